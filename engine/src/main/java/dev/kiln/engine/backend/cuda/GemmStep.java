package dev.kiln.engine.backend.cuda;

import dev.kiln.engine.KilnException;

/** A (batched) GEMM with optional bias and relu: dense layers and matmuls. */
final class GemmStep implements Step {
    private final String node;
    private final CudaApi api;
    private final boolean transB;
    private final boolean relu;
    private final long a;
    private final long b;
    private final long bias;
    private final long c;
    private final Lin m;
    private final long n;
    private final long k;
    private final Lin count;
    private final long strideA;
    private final long strideB;
    private final long strideC;

    GemmStep(String node, CudaApi api, boolean transB, boolean relu, long a, long b, long bias, long c, Lin m, long n, long k, Lin count,
             long strideA, long strideB, long strideC) {
        this.node = node;
        this.api = api;
        this.transB = transB;
        this.relu = relu;
        this.a = a;
        this.b = b;
        this.bias = bias;
        this.c = c;
        this.m = m;
        this.n = n;
        this.k = k;
        this.count = count;
        this.strideA = strideA;
        this.strideB = strideB;
        this.strideC = strideC;
    }

    @Override
    public void run(long batch, long stream) {
        long rows = m.at(batch);
        long matrices = count.at(batch);
        if (rows == 0 || matrices == 0) {
            return;
        }
        try {
            api.gemm(transB, relu, a, b, bias, c, rows, n, k, matrices, strideA, strideB, strideC, stream);
        } catch (KilnException e) {
            throw new KilnException(e.code(), "Node " + node + ": " + e.getMessage(), e);
        }
    }

    @Override
    public String node() {
        return node;
    }
}
