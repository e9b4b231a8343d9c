package dev.kiln.engine.backend.cpu;

import dev.kiln.engine.backend.Slot;
import dev.kiln.engine.ops.MatMulOp;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.openblas.global.openblas_nolapack;

import java.nio.FloatBuffer;

/** Batched matmul: one OpenBLAS sgemm per matrix pair, pointers repositioned in place (no allocation). */
final class BlasMatMulKernel extends MatMulOp.BatchedMatMul {
    private final FloatPointer a;
    private final FloatPointer b;
    private final FloatPointer c;

    BlasMatMulKernel(Slot a, Slot b, Slot c) {
        super(a, b, c);
        this.a = new FloatPointer(a.buffer());
        this.b = new FloatPointer(b.buffer());
        this.c = new FloatPointer(c.buffer());
    }

    @Override
    protected void multiply(FloatBuffer aBuffer, int ao, FloatBuffer bBuffer, int bo, FloatBuffer cBuffer, int co, int m, int k, int n) {
        openblas_nolapack.cblas_sgemm(openblas_nolapack.CblasRowMajor, openblas_nolapack.CblasNoTrans, openblas_nolapack.CblasNoTrans,
                m, n, k, 1f, a.position(ao), k, b.position(bo), n, 0f, c.position(co), n);
    }
}
