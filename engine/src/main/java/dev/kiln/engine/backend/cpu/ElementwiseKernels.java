package dev.kiln.engine.backend.cpu;

import dev.kiln.engine.backend.Kernel;
import dev.kiln.engine.backend.Slot;
import dev.kiln.engine.ir.Attributes;
import dev.kiln.engine.ops.OpDef;
import dev.kiln.engine.ops.OpRegistry;
import dev.kiln.engine.ops.ReduceOp;
import dev.kiln.engine.ops.UnaryOp;
import dev.kiln.engine.tensor.Shape;

import java.nio.FloatBuffer;

/**
 * Unary functions and reductions over trailing axes, run over heap chunks: one bulk read from the (direct) buffer,
 * a plain loop the JIT can vectorize, one bulk write. The reference kernels go through the buffer per element,
 * which costs a bounds and liveness check each time. Unary results are identical (the same float functions) except
 * GELU and erf, computed through {@link dev.kiln.engine.ops.MathFunctions#geluFast} and {@code erfFast} (relative
 * error ~2e-7); sums are
 * accumulated in double, so they may differ from the reference's float sums by float rounding only.
 */
final class ElementwiseKernels {
    private static final int CHUNK = 4096;

    private ElementwiseKernels() {
    }

    /** A kernel for a unary op (relu inlined, the others through the op's function), or null. */
    static Kernel unary(String op, Slot in, Slot out) {
        OpDef def = OpRegistry.get(op);
        if (!(def instanceof UnaryOp unary)) {
            return null;
        }
        boolean relu = op.equals("relu");
        boolean vectorGelu = op.equals("gelu") && VectorSupport.AVAILABLE;
        // GELU through the erfc fit (relative error ~2e-7) rather than the reference's erf series, ~10x cheaper.
        UnaryOp.Fn fn = switch (op) {
            case "gelu" -> dev.kiln.engine.ops.MathFunctions::geluFast;
            case OpRegistry.ERF -> v -> (float) dev.kiln.engine.ops.MathFunctions.erfFast(v);
            default -> unary.function();
        };
        float[] chunk = new float[CHUNK];
        FloatBuffer src = in.buffer();
        FloatBuffer dst = out.buffer();
        return batch -> {
            int n = out.elementCount(batch);
            for (int from = 0; from < n; from += CHUNK) {
                int len = Math.min(CHUNK, n - from);
                src.get(in.offset() + from, chunk, 0, len);
                if (vectorGelu) {
                    VectorMath.gelu(chunk, len);
                } else if (relu) {
                    for (int i = 0; i < len; i++) {
                        // The reference's expression without the per-element call; branch-free (a compare and
                        // select compiled to a branch here and measured 6x slower on real activations).
                        chunk[i] = Math.max(chunk[i], 0f);
                    }
                } else {
                    for (int i = 0; i < len; i++) {
                        chunk[i] = fn.apply(chunk[i]);
                    }
                }
                dst.put(out.offset() + from, chunk, 0, len);
            }
        };
    }

    /**
     * The double sum of {@code n} floats from {@code base}, in four running sums: one chain of dependent adds costs 4
     * cycles an element. Shared by the trailing reductions and layer norm.
     */
    static double sum(float[] a, int base, int n) {
        double s0 = 0;
        double s1 = 0;
        double s2 = 0;
        double s3 = 0;
        int k = 0;
        for (; k + 3 < n; k += 4) {
            s0 += a[base + k];
            s1 += a[base + k + 1];
            s2 += a[base + k + 2];
            s3 += a[base + k + 3];
        }
        for (; k < n; k++) {
            s0 += a[base + k];
        }
        return (s0 + s1) + (s2 + s3);
    }

    /**
     * add, sub, mul or div where one operand is the whole output's size and the other the same size, a scalar, or a
     * suffix of it repeated (a bias row): chunks read in bulk, one plain loop per op that the JIT vectorizes, one bulk
     * write. The same float operation per element as the reference kernel, so the results are identical; the reference
     * calls the op's function through an interface per element (2-3 ns an element in the encoder's residual adds and
     * attention scaling). Null for other ops or broadcasts (the reference kernel runs them).
     */
    static Kernel binary(String op, Slot a, Slot b, Slot out) {
        int code = switch (op) {
            case OpRegistry.ADD -> 0;
            case OpRegistry.SUB -> 1;
            case OpRegistry.MUL -> 2;
            case OpRegistry.DIV -> 3;
            default -> -1;
        };
        if (code < 0) {
            return null;
        }
        Shape outShape = out.type().shape();
        boolean aFull = a.type().shape().equals(outShape);
        boolean bFull = b.type().shape().equals(outShape);
        if (aFull && bFull) {
            return binaryKernel(code, a, b, out, 0, 0);
        }
        // A scalar or a suffix: a concrete element count that divides every row of the output (a chunk holds at least
        // one period, so a long one makes chunks longer).
        if (aFull && b.type().shape().isConcrete()) {
            int period = (int) b.type().shape().elementCount();
            return isSuffix(b.type().shape(), outShape) ? binaryKernel(code, a, b, out, 0, period) : null;
        }
        if (bFull && a.type().shape().isConcrete()) {
            int period = (int) a.type().shape().elementCount();
            return isSuffix(a.type().shape(), outShape) ? binaryKernel(code, a, b, out, period, 0) : null;
        }
        return null;
    }

    /** Whether {@code s} right-aligned against {@code out} is leading ones and then out's trailing dimensions exactly. */
    private static boolean isSuffix(Shape s, Shape out) {
        int offset = out.rank() - s.rank();
        if (offset < 0) {
            return false;
        }
        int i = 0;
        while (i < s.rank() && s.dim(i).isConcrete() && s.dim(i).size() == 1) {
            i++;
        }
        for (; i < s.rank(); i++) {
            if (!s.dim(i).equals(out.dim(i + offset))) {
                return false;
            }
        }
        return true;
    }

    /**
     * The kernel: {@code aPeriod} / {@code bPeriod} 0 for an operand of the output's size, else the length of the
     * operand repeated along it (1 for a scalar). The repeated operand is tiled once into a chunk-long array (read
     * per run: it may be an activation of the same graph), so every case is the same element-by-element loop.
     */
    private static Kernel binaryKernel(int code, Slot a, Slot b, Slot out, int aPeriod, int bPeriod) {
        int period = Math.max(aPeriod, bPeriod);
        // Whole periods per chunk, so a chunk always starts at a period's start.
        int chunk = period == 0 ? CHUNK : Math.max(period, CHUNK / period * period);
        float[] ca = new float[chunk];
        float[] cb = new float[chunk];
        float[] tile = period == 0 ? null : new float[chunk];
        FloatBuffer as = a.buffer();
        FloatBuffer bs = b.buffer();
        FloatBuffer dst = out.buffer();
        return batch -> {
            int n = out.elementCount(batch);
            if (n == 0) {
                return;
            }
            if (period > 0) {
                Slot repeated = aPeriod > 0 ? a : b;
                repeated.buffer().get(repeated.offset(), tile, 0, period);
                for (int from = period; from < chunk; from += period) {
                    System.arraycopy(tile, 0, tile, from, period);
                }
            }
            for (int from = 0; from < n; from += chunk) {
                int len = Math.min(chunk, n - from);
                float[] x = aPeriod > 0 ? tile : ca;
                float[] y = bPeriod > 0 ? tile : cb;
                if (aPeriod == 0) {
                    as.get(a.offset() + from, ca, 0, len);
                }
                if (bPeriod == 0) {
                    bs.get(b.offset() + from, cb, 0, len);
                }
                // One loop per op: each stays monomorphic and vectorizable; the result lands in ca.
                switch (code) {
                    case 0 -> {
                        for (int i = 0; i < len; i++) {
                            ca[i] = x[i] + y[i];
                        }
                    }
                    case 1 -> {
                        for (int i = 0; i < len; i++) {
                            ca[i] = x[i] - y[i];
                        }
                    }
                    case 2 -> {
                        for (int i = 0; i < len; i++) {
                            ca[i] = x[i] * y[i];
                        }
                    }
                    default -> {
                        for (int i = 0; i < len; i++) {
                            ca[i] = x[i] / y[i];
                        }
                    }
                }
                dst.put(out.offset() + from, ca, 0, len);
            }
        };
    }

    /**
     * reduce_mean / reduce_sum over one contiguous run of axes that does not include the first (global average
     * pooling: axes [2, 3] of NCHW; mean pooling over tokens: axis 1 of [batch, tokens, d]): per leading index, one bulk
     * read of the reduced block, sums in double per trailing position. Null for any other axes (the reference kernel
     * handles them).
     */
    static Kernel contiguousReduce(String op, Slot in, Slot out, Attributes attributes) {
        Shape shape = in.type().shape();
        boolean[] reduced = ReduceOp.reducedAxes(shape, attributes.getLongs("axes"));
        int first = -1;
        int last = -1;
        for (int i = 0; i < shape.rank(); i++) {
            if (reduced[i]) {
                if (first < 0) {
                    first = i;
                } else if (last != i - 1) {
                    return null;
                }
                last = i;
            }
        }
        if (first <= 0) {
            return null;
        }
        for (int i = first; i < shape.rank(); i++) {
            if (shape.dim(i).isSymbolic()) {
                return null;
            }
        }
        int run = (int) shape.dims().subList(first, last + 1).stream().mapToLong(d -> d.size()).reduce(1, (a, b) -> a * b);
        if (run == 0) {
            return null;
        }
        int inner = (int) shape.dims().subList(last + 1, shape.rank()).stream().mapToLong(d -> d.size()).reduce(1, (a, b) -> a * b);
        boolean mean = op.equals(OpRegistry.REDUCE_MEAN);
        if (inner == 1) {
            return trailingReduce(in, out, run, mean);
        }
        float[] block = new float[run * inner];
        double[] sums = new double[inner];
        float[] results = new float[inner];
        FloatBuffer src = in.buffer();
        FloatBuffer dst = out.buffer();
        return batch -> {
            int outer = block.length == 0 ? 0 : in.elementCount(batch) / block.length;
            for (int o = 0; o < outer; o++) {
                src.get(in.offset() + o * block.length, block, 0, block.length);
                java.util.Arrays.fill(sums, 0);
                for (int r = 0; r < run; r++) {
                    int base = r * inner;
                    for (int i = 0; i < inner; i++) {
                        sums[i] += block[base + i];
                    }
                }
                for (int i = 0; i < inner; i++) {
                    results[i] = (float) (mean ? sums[i] / run : sums[i]);
                }
                dst.put(out.offset() + o * inner, results, 0, inner);
            }
        };
    }

    /**
     * Sums (or means) of rows of {@code run} contiguous values, one per output (global average pooling, a mean over
     * the last axis): many rows per bulk read and four independent double accumulators per row, instead of one dependent
     * add chain and one small buffer read and write per output (which measured 20% of the CNN).
     */
    private static Kernel trailingReduce(Slot in, Slot out, int run, boolean mean) {
        int rowsPerChunk = Math.max(1, 8192 / run);
        float[] chunk = new float[rowsPerChunk * run];
        float[] results = new float[rowsPerChunk];
        FloatBuffer src = in.buffer();
        FloatBuffer dst = out.buffer();
        return batch -> {
            int outer = in.elementCount(batch) / run;
            for (int o0 = 0; o0 < outer; o0 += rowsPerChunk) {
                int rows = Math.min(rowsPerChunk, outer - o0);
                src.get(in.offset() + o0 * run, chunk, 0, rows * run);
                for (int r = 0; r < rows; r++) {
                    double sum = sum(chunk, r * run, run);
                    results[r] = (float) (mean ? sum / run : sum);
                }
                dst.put(out.offset() + o0, results, 0, rows);
            }
        };
    }
}
