package dev.kiln.engine.backend.cpu;

import dev.kiln.engine.backend.Kernel;
import dev.kiln.engine.backend.Slot;
import dev.kiln.engine.ir.Node;
import dev.kiln.engine.ops.Activation;
import dev.kiln.engine.ops.DenseOp;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.openblas.global.openblas_nolapack;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * {@code activation(x W^T + b)} as one OpenBLAS call (sgemv for a single row, sgemm otherwise) followed by one pass
 * that adds the bias and applies the activation in place ({@link Epilogue}).
 */
final class BlasDenseKernel implements Kernel {
    private final Slot x;
    private final FloatPointer xPointer;
    private final FloatPointer wPointer;
    private final FloatPointer cPointer;
    private final ByteBuffer out;
    private final int outByteOffset;
    private final ByteBuffer bias;
    private final int biasByteOffset;
    private final Activation activation;
    private final Epilogue epilogue;
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
        this.out = bytes(out);
        this.outByteOffset = out.offset() * 4;
        this.bias = inputs.length > 2 ? bytes(inputs[2]) : null;
        this.biasByteOffset = inputs.length > 2 ? inputs[2].offset() * 4 : 0;
        this.activation = DenseOp.activation(node.attributes());
        this.epilogue = Epilogue.create(activation);
    }

    /** A little-endian byte view of the slot's whole buffer (JavaCPP's asByteBuffer starts at the address, not the position). */
    static ByteBuffer bytes(Slot slot) {
        return new FloatPointer(slot.buffer().duplicate().clear()).asByteBuffer().order(ByteOrder.LITTLE_ENDIAN);
    }

    /** A pointer at the slot's first element (from a position-0 view: JavaCPP counts a buffer's position against the address). */
    static FloatPointer pointer(Slot slot) {
        return new FloatPointer(slot.buffer().duplicate().clear()).position(slot.offset());
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
        if (bias != null || activation != Activation.NONE) {
            epilogue.apply(out, outByteOffset, bias, biasByteOffset, rows, n);
        }
    }
}
