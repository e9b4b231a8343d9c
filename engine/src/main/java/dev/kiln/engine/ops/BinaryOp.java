package dev.kiln.engine.ops;

import dev.kiln.engine.backend.Kernel;
import dev.kiln.engine.backend.Slot;
import dev.kiln.engine.ir.Attributes;
import dev.kiln.engine.ir.TensorType;
import dev.kiln.engine.tensor.Dim;
import dev.kiln.engine.tensor.Shape;

import java.nio.FloatBuffer;
import java.util.List;

/** Elementwise functions of two tensors with NumPy broadcasting: add, sub, mul, div, pow. */
public final class BinaryOp extends BaseOp {
    /** A float function of two arguments. */
    public interface Fn {
        float apply(float a, float b);
    }

    private final Fn fn;

    BinaryOp(String name, String summary, Fn fn) {
        super(name, summary, List.of("a", "b"), 2, List.of());
        this.fn = fn;
    }

    public Fn function() {
        return fn;
    }

    @Override
    public List<TensorType> inferTypes(List<TensorType> inputs, Attributes attributes) {
        checkArity(inputs);
        return List.of(TensorType.float32(Broadcasting.broadcast(name(), inputs.get(0).shape(), inputs.get(1).shape())));
    }

    @Override
    public boolean canRunInPlace(int index) {
        return true;
    }

    @Override
    public Kernel newKernel(Slot[] inputs, Slot[] outputs, Attributes attributes) {
        return new BroadcastKernel(inputs[0], inputs[1], outputs[0], fn);
    }

    /**
     * Computes {@code out = fn(a, b)} with broadcasting. Fast paths for equal sizes, scalars and trailing-suffix
     * operands (a bias row); otherwise an odometer over the output with per-operand strides (0 where broadcast).
     */
    static final class BroadcastKernel implements Kernel {
        private final Slot a;
        private final Slot b;
        private final Slot out;
        private final Fn fn;
        private final boolean bIsSuffix;
        private final boolean aIsSuffix;
        private final long[] outDims;
        private final int[] aStrides;
        private final int[] bStrides;
        private final int[] counter;
        private long stridesBatch = -1;

        BroadcastKernel(Slot a, Slot b, Slot out, Fn fn) {
            this.a = a;
            this.b = b;
            this.out = out;
            this.fn = fn;
            int rank = out.rank();
            this.outDims = new long[rank];
            this.aStrides = new int[rank];
            this.bStrides = new int[rank];
            this.counter = new int[rank];
            this.bIsSuffix = isSuffix(b.type().shape(), out.type().shape());
            this.aIsSuffix = isSuffix(a.type().shape(), out.type().shape());
        }

        /** Whether {@code s}, right-aligned, is ones followed by the trailing dimensions of {@code out}. */
        private static boolean isSuffix(Shape s, Shape out) {
            int offset = out.rank() - s.rank();
            boolean leadingOnes = true;
            for (int i = 0; i < s.rank(); i++) {
                Dim d = s.dim(i);
                if (leadingOnes && d.equals(Dim.of(1)) && !out.dim(i + offset).equals(Dim.of(1))) {
                    continue;
                }
                leadingOnes = false;
                if (!d.equals(out.dim(i + offset))) {
                    return false;
                }
            }
            return true;
        }

        @Override
        public void run(long batch) {
            FloatBuffer ab = a.buffer();
            FloatBuffer bb = b.buffer();
            FloatBuffer ob = out.buffer();
            int ao = a.offset();
            int bo = b.offset();
            int oo = out.offset();
            int n = out.elementCount(batch);
            int na = a.elementCount(batch);
            int nb = b.elementCount(batch);
            if (n == 0) {
                return;
            }
            if (na == n && nb == n) {
                for (int i = 0; i < n; i++) {
                    ob.put(oo + i, fn.apply(ab.get(ao + i), bb.get(bo + i)));
                }
            } else if (na == n && nb == 1) {
                float v = bb.get(bo);
                for (int i = 0; i < n; i++) {
                    ob.put(oo + i, fn.apply(ab.get(ao + i), v));
                }
            } else if (nb == n && na == 1) {
                float v = ab.get(ao);
                for (int i = 0; i < n; i++) {
                    ob.put(oo + i, fn.apply(v, bb.get(bo + i)));
                }
            } else if (na == n && bIsSuffix) {
                for (int base = 0; base < n; base += nb) {
                    for (int j = 0; j < nb; j++) {
                        ob.put(oo + base + j, fn.apply(ab.get(ao + base + j), bb.get(bo + j)));
                    }
                }
            } else if (nb == n && aIsSuffix) {
                for (int base = 0; base < n; base += na) {
                    for (int j = 0; j < na; j++) {
                        ob.put(oo + base + j, fn.apply(ab.get(ao + j), bb.get(bo + base + j)));
                    }
                }
            } else {
                general(batch, n, ab, ao, bb, bo, ob, oo);
            }
        }

        private void general(long batch, int n, FloatBuffer ab, int ao, FloatBuffer bb, int bo, FloatBuffer ob, int oo) {
            int rank = outDims.length;
            if (stridesBatch != batch) {
                for (int i = 0; i < rank; i++) {
                    outDims[i] = out.size(i, batch);
                }
                Broadcasting.broadcastStrides(a.type().shape(), batch, outDims, aStrides);
                Broadcasting.broadcastStrides(b.type().shape(), batch, outDims, bStrides);
                stridesBatch = batch;
            }
            java.util.Arrays.fill(counter, 0);
            int ai = 0;
            int bi = 0;
            for (int i = 0; i < n; i++) {
                ob.put(oo + i, fn.apply(ab.get(ao + ai), bb.get(bo + bi)));
                for (int d = rank - 1; d >= 0; d--) {
                    counter[d]++;
                    ai += aStrides[d];
                    bi += bStrides[d];
                    if (counter[d] < outDims[d]) {
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
