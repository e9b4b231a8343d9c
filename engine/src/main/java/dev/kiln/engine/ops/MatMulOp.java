package dev.kiln.engine.ops;

import dev.kiln.engine.backend.Kernel;
import dev.kiln.engine.backend.Slot;
import dev.kiln.engine.ir.Attributes;
import dev.kiln.engine.ir.TensorType;
import dev.kiln.engine.tensor.Dim;
import dev.kiln.engine.tensor.Shape;

import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.List;

/**
 * Matrix product of the last two dimensions, {@code [..., M, K] x [..., K, N] -> [..., M, N]}, with the leading
 * (batch) dimensions broadcast. Both inputs must have rank 2 or more.
 */
public final class MatMulOp extends BaseOp {
    MatMulOp() {
        super(OpRegistry.MATMUL, "Matrix product over the last two axes; leading axes broadcast (NumPy matmul, rank >= 2)",
                List.of("a", "b"), 2, List.of());
    }

    @Override
    public List<TensorType> inferTypes(List<TensorType> inputs, Attributes attributes) {
        checkArity(inputs);
        Shape a = inputs.get(0).shape();
        Shape b = inputs.get(1).shape();
        if (a.rank() < 2 || b.rank() < 2) {
            throw shapeError("matmul needs rank >= 2 operands but got %s x %s", a, b);
        }
        if (!a.dim(-1).equals(b.dim(-2))) {
            throw shapeError("matmul inner dimensions differ: %s x %s (%s vs %s)", a, b, a.dim(-1), b.dim(-2));
        }
        Shape batchA = Shape.of(a.dims().subList(0, a.rank() - 2));
        Shape batchB = Shape.of(b.dims().subList(0, b.rank() - 2));
        List<Dim> out = new ArrayList<>(Broadcasting.broadcast("matmul", batchA, batchB).dims());
        out.add(a.dim(-2));
        out.add(b.dim(-1));
        return List.of(TensorType.float32(Shape.of(out)));
    }

    @Override
    public Kernel newKernel(Slot[] inputs, Slot[] outputs, Attributes attributes) {
        return new BatchedMatMul(inputs[0], inputs[1], outputs[0]) {
            @Override
            protected void multiply(FloatBuffer a, int ao, FloatBuffer b, int bo, FloatBuffer c, int co, int m, int k, int n) {
                naive(a, ao, b, bo, c, co, m, k, n);
            }
        };
    }

    /** Row-major {@code C[m,n] = A[m,k] B[k,n]}, i-k-j order. */
    static void naive(FloatBuffer a, int ao, FloatBuffer b, int bo, FloatBuffer c, int co, int m, int k, int n) {
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                c.put(co + i * n + j, 0f);
            }
            for (int p = 0; p < k; p++) {
                float av = a.get(ao + i * k + p);
                int brow = bo + p * n;
                int crow = co + i * n;
                for (int j = 0; j < n; j++) {
                    c.put(crow + j, c.get(crow + j) + av * b.get(brow + j));
                }
            }
        }
    }

    /**
     * Walks the broadcast batch dimensions of a matmul and calls {@link #multiply} per matrix pair; backends override
     * {@code multiply} with BLAS.
     */
    public abstract static class BatchedMatMul implements Kernel {
        private final Slot a;
        private final Slot b;
        private final Slot c;
        private final int batchRank;
        private final long[] batchDims;
        private final int[] aStrides;
        private final int[] bStrides;
        private final int[] counter;
        private final Shape aBatch;
        private final Shape bBatch;

        protected BatchedMatMul(Slot a, Slot b, Slot c) {
            this.a = a;
            this.b = b;
            this.c = c;
            this.batchRank = c.rank() - 2;
            this.batchDims = new long[batchRank];
            this.aStrides = new int[batchRank];
            this.bStrides = new int[batchRank];
            this.counter = new int[batchRank];
            this.aBatch = Shape.of(a.type().shape().dims().subList(0, a.rank() - 2));
            this.bBatch = Shape.of(b.type().shape().dims().subList(0, b.rank() - 2));
        }

        protected abstract void multiply(FloatBuffer a, int ao, FloatBuffer b, int bo, FloatBuffer c, int co, int m, int k, int n);

        @Override
        public void run(long batch) {
            int m = (int) a.size(a.rank() - 2, batch);
            int k = (int) a.size(a.rank() - 1, batch);
            int n = (int) b.size(b.rank() - 1, batch);
            int matrices = 1;
            for (int i = 0; i < batchRank; i++) {
                batchDims[i] = c.size(i, batch);
                matrices *= (int) batchDims[i];
            }
            if (matrices == 0 || m == 0 || n == 0) {
                return;
            }
            Broadcasting.broadcastStrides(aBatch, batch, batchDims, aStrides);
            Broadcasting.broadcastStrides(bBatch, batch, batchDims, bStrides);
            java.util.Arrays.fill(counter, 0);
            int ai = 0;
            int bi = 0;
            int aMatrix = m * k;
            int bMatrix = k * n;
            int cMatrix = m * n;
            for (int t = 0; t < matrices; t++) {
                multiply(a.buffer(), a.offset() + ai * aMatrix, b.buffer(), b.offset() + bi * bMatrix,
                        c.buffer(), c.offset() + t * cMatrix, m, k, n);
                for (int d = batchRank - 1; d >= 0; d--) {
                    counter[d]++;
                    ai += aStrides[d];
                    bi += bStrides[d];
                    if (counter[d] < batchDims[d]) {
                        break;
                    }
                    ai -= aStrides[d] * counter[d];
                    bi -= bStrides[d] * counter[d];
                    counter[d] = 0;
                }
            }
        }
    }
}
