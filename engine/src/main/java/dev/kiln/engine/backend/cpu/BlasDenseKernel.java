package dev.kiln.engine.backend.cpu;

import dev.kiln.engine.backend.Kernel;
import dev.kiln.engine.backend.Slot;
import dev.kiln.engine.ir.Node;
import dev.kiln.engine.ops.Activation;
import dev.kiln.engine.ops.DenseOp;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.openblas.global.openblas_nolapack;

import java.nio.FloatBuffer;

/**
 * {@code activation(x W^T + b)} as one OpenBLAS call (sgemv for a single row, sgemm otherwise) followed by one pass
 * that adds the bias and applies the activation in place.
 */
final class BlasDenseKernel implements Kernel {
    private final Slot x;
    private final FloatPointer xPointer;
    private final FloatPointer wPointer;
    private final FloatPointer cPointer;
    private final FloatBuffer c;
    private final int cOffset;
    private final FloatBuffer bias;
    private final int biasOffset;
    private final Activation activation;
    private final int k;
    private final int n;

    BlasDenseKernel(Node node, Slot[] inputs, Slot out) {
        this.x = inputs[0];
        Slot w = inputs[1];
        this.k = (int) w.size(1, 1);
        this.n = (int) w.size(0, 1);
        this.xPointer = pointer(x);
        this.wPointer = pointer(w);
        this.cPointer = pointer(out);
        this.c = out.buffer();
        this.cOffset = out.offset();
        this.bias = inputs.length > 2 ? inputs[2].buffer() : null;
        this.biasOffset = inputs.length > 2 ? inputs[2].offset() : 0;
        this.activation = DenseOp.activation(node.attributes());
    }

    static FloatPointer pointer(Slot slot) {
        return new FloatPointer(slot.buffer()).position(slot.offset());
    }

    @Override
    public void run(long batch) {
        int rows = k == 0 ? 0 : x.elementCount(batch) / k;
        if (rows == 0) {
            return;
        }
        if (rows == 1) {
            openblas_nolapack.cblas_sgemv(openblas_nolapack.CblasRowMajor, openblas_nolapack.CblasNoTrans, n, k,
                    1f, wPointer, k, xPointer, 1, 0f, cPointer, 1);
        } else {
            openblas_nolapack.cblas_sgemm(openblas_nolapack.CblasRowMajor, openblas_nolapack.CblasNoTrans, openblas_nolapack.CblasTrans,
                    rows, n, k, 1f, xPointer, k, wPointer, k, 0f, cPointer, n);
        }
        epilogue(rows);
    }

    private void epilogue(int rows) {
        FloatBuffer out = c;
        int base = cOffset;
        int total = rows * n;
        if (bias == null) {
            switch (activation) {
                case NONE:
                    return;
                case RELU:
                    for (int i = 0; i < total; i++) {
                        float v = out.get(base + i);
                        out.put(base + i, v < 0f ? 0f : v);
                    }
                    return;
                default:
                    for (int i = 0; i < total; i++) {
                        out.put(base + i, activation.apply(out.get(base + i)));
                    }
                    return;
            }
        }
        switch (activation) {
            case NONE:
                for (int r = 0; r < rows; r++) {
                    int row = base + r * n;
                    for (int j = 0; j < n; j++) {
                        out.put(row + j, out.get(row + j) + bias.get(biasOffset + j));
                    }
                }
                return;
            case RELU:
                for (int r = 0; r < rows; r++) {
                    int row = base + r * n;
                    for (int j = 0; j < n; j++) {
                        float v = out.get(row + j) + bias.get(biasOffset + j);
                        out.put(row + j, v < 0f ? 0f : v);
                    }
                }
                return;
            default:
                for (int r = 0; r < rows; r++) {
                    int row = base + r * n;
                    for (int j = 0; j < n; j++) {
                        out.put(row + j, activation.apply(out.get(row + j) + bias.get(biasOffset + j)));
                    }
                }
        }
    }
}
