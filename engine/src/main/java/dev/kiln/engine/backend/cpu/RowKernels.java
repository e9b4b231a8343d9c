package dev.kiln.engine.backend.cpu;

import dev.kiln.engine.backend.Kernel;
import dev.kiln.engine.backend.Slot;
import dev.kiln.engine.ir.Attributes;
import dev.kiln.engine.ops.TransposeOp;
import dev.kiln.engine.tensor.Shape;

import java.nio.FloatBuffer;

/**
 * Softmax over the last axis and transposes, on heap copies: one bulk read, plain array loops, one bulk write, where
 * the reference kernels read and write the (direct) buffers element by element. Transposes give identical results;
 * softmax takes the same steps (max-subtracted exp, NaN anywhere in a row makes the row NaN) but computes the exps in
 * vector lanes when the Vector API is present (within a few float ulps of {@code Math.exp}).
 */
final class RowKernels {
    private RowKernels() {
    }

    /** Softmax along the last axis, or null for another axis (the reference kernel handles it). */
    static Kernel softmax(Slot in, Slot out, Attributes attributes) {
        int rank = in.rank();
        int axis = in.type().shape().normalizeAxis((int) attributes.getLong("axis", -1));
        if (axis != rank - 1 || in.type().shape().dim(axis).isSymbolic()) {
            return null;
        }
        int n = (int) in.type().shape().dim(axis).size();
        // Several short rows per bulk read (attention rows are 16 floats long).
        int rowsPerChunk = Math.max(1, 4096 / Math.max(1, n));
        float[] chunk = new float[rowsPerChunk * n];
        float[] row = new float[n];
        FloatBuffer src = in.buffer();
        FloatBuffer dst = out.buffer();
        boolean vector = VectorSupport.AVAILABLE;
        boolean wholeLanes = vector && n > 0 && n % VectorMath.lanes() == 0;
        return batch -> {
            int rows = n == 0 ? 0 : in.elementCount(batch) / n;
            for (int first = 0; first < rows; first += rowsPerChunk) {
                int count = Math.min(rowsPerChunk, rows - first);
                src.get(in.offset() + first * n, chunk, 0, count * n);
                if (wholeLanes) {
                    // Rows that fill whole vectors: the row never leaves the lanes.
                    VectorMath.softmaxRows(chunk, count, n);
                    dst.put(out.offset() + first * n, chunk, 0, count * n);
                    continue;
                }
                for (int r = 0; r < count; r++) {
                    System.arraycopy(chunk, r * n, row, 0, n);
                    float max = Float.NEGATIVE_INFINITY;
                    boolean nan = false;
                    for (int i = 0; i < n; i++) {
                        nan |= Float.isNaN(row[i]);
                        max = Math.max(max, row[i]);
                    }
                    double sum;
                    if (vector) {
                        sum = VectorMath.expMinus(row, n, max);
                    } else {
                        sum = 0;
                        for (int i = 0; i < n; i++) {
                            float e = (float) Math.exp(row[i] - max);
                            row[i] = e;
                            sum += e;
                        }
                    }
                    float scale = (float) (1.0 / sum);
                    for (int i = 0; i < n; i++) {
                        chunk[r * n + i] = nan ? Float.NaN : row[i] * scale;
                    }
                }
                dst.put(out.offset() + first * n, chunk, 0, count * n);
            }
        };
    }

    /**
     * Split along a concrete axis through the heap: one bulk read of the input, each piece assembled with
     * {@code arraycopy} and written with one bulk write (the reference kernel reads and writes every element through
     * the buffers: 5% of the encoder). Scratch sized for the largest batch seen.
     */
    static Kernel split(Slot in, Slot[] outs, Attributes attributes) {
        Shape shape = in.type().shape();
        int axis = shape.normalizeAxis((int) attributes.getLong("axis"));
        for (int d = axis; d < shape.rank(); d++) {
            if (shape.dim(d).isSymbolic()) {
                return null;
            }
        }
        long[] sizes = attributes.getLongs("sizes");
        int inner = 1;
        for (int d = axis + 1; d < shape.rank(); d++) {
            inner *= (int) shape.dim(d).size();
        }
        int inRow = (int) shape.dim(axis).size() * inner;
        int[] pieceRows = new int[sizes.length];
        int[] pieceStarts = new int[sizes.length];
        for (int k = 0, start = 0; k < sizes.length; k++) {
            pieceRows[k] = (int) sizes[k] * inner;
            pieceStarts[k] = start;
            start += pieceRows[k];
        }
        float[][] scratch = new float[2][];
        FloatBuffer src = in.buffer();
        return batch -> {
            int n = in.elementCount(batch);
            if (scratch[0] == null || scratch[0].length < n) {
                scratch[0] = new float[n];
                scratch[1] = new float[n];
            }
            float[] a = scratch[0];
            float[] piece = scratch[1];
            src.get(in.offset(), a, 0, n);
            int outer = inRow == 0 ? 0 : n / inRow;
            for (int k = 0; k < outs.length; k++) {
                int len = pieceRows[k];
                for (int o = 0; o < outer; o++) {
                    System.arraycopy(a, o * inRow + pieceStarts[k], piece, o * len, len);
                }
                outs[k].buffer().put(outs[k].offset(), piece, 0, outer * len);
            }
        };
    }

    /** A transpose through heap copies of the whole input and output (sized for the executor's capacity on first use). */
    static Kernel transpose(Slot in, Slot out, Attributes attributes) {
        int[] p = TransposeOp.permutation(in.type().shape(), attributes.getLongs("perm"));
        int rank = p.length;
        long[] outDims = new long[rank];
        int[] inStrides = new int[rank];
        int[] strideForOut = new int[rank];
        int[] counter = new int[rank];
        int[] dims4 = new int[4];
        int[] strides4 = new int[4];
        float[][] scratch = new float[2][];
        FloatBuffer src = in.buffer();
        FloatBuffer dst = out.buffer();
        return batch -> {
            int n = out.elementCount(batch);
            if (scratch[0] == null || scratch[0].length < n) {
                scratch[0] = new float[n];
                scratch[1] = new float[n];
            }
            float[] a = scratch[0];
            float[] b = scratch[1];
            src.get(in.offset(), a, 0, n);
            int stride = 1;
            for (int i = rank - 1; i >= 0; i--) {
                inStrides[i] = stride;
                stride *= (int) in.size(i, batch);
            }
            for (int i = 0; i < rank; i++) {
                outDims[i] = in.size(p[i], batch);
                strideForOut[i] = inStrides[p[i]];
            }
            if (rank <= 4) {
                permute4(a, b, outDims, strideForOut, rank, dims4, strides4);
                dst.put(out.offset(), b, 0, n);
                return;
            }
            java.util.Arrays.fill(counter, 0);
            // The innermost output axis runs as a strided copy loop; the odometer advances the axes above it.
            int last = rank - 1;
            int inner = (int) outDims[last];
            int innerStride = strideForOut[last];
            int ii = 0;
            for (int o = 0; o < n; o += inner) {
                for (int k = 0, at = ii; k < inner; k++, at += innerStride) {
                    b[o + k] = a[at];
                }
                for (int d = last - 1; d >= 0; d--) {
                    counter[d]++;
                    ii += strideForOut[d];
                    if (counter[d] < outDims[d]) {
                        break;
                    }
                    ii -= strideForOut[d] * counter[d];
                    counter[d] = 0;
                }
            }
            dst.put(out.offset(), b, 0, n);
        };
    }

    /**
     * A transpose of rank 4 or less as four nested loops (missing leading axes of size 1): the innermost output axis a
     * strided copy, or {@code arraycopy} when it is contiguous in the input. Against the odometer of higher ranks this
     * drops the per-run bookkeeping: the encoder's [64, 16, 4, 8] -> [64, 4, 16, 8] copies 8 floats per run.
     */
    private static void permute4(float[] a, float[] b, long[] outDims, int[] strideForOut, int rank, int[] d, int[] st) {
        java.util.Arrays.fill(d, 1);
        java.util.Arrays.fill(st, 0);
        for (int i = 0; i < rank; i++) {
            d[4 - rank + i] = (int) outDims[i];
            st[4 - rank + i] = strideForOut[i];
        }
        int d3 = d[3];
        int s3 = st[3];
        int o = 0;
        for (int i0 = 0; i0 < d[0]; i0++) {
            int b0 = i0 * st[0];
            for (int i1 = 0; i1 < d[1]; i1++) {
                int b1 = b0 + i1 * st[1];
                for (int i2 = 0; i2 < d[2]; i2++) {
                    int at = b1 + i2 * st[2];
                    if (s3 == 1) {
                        System.arraycopy(a, at, b, o, d3);
                    } else {
                        for (int k = 0; k < d3; k++, at += s3) {
                            b[o + k] = a[at];
                        }
                    }
                    o += d3;
                }
            }
        }
    }

    /** Floats of rows read and written per bulk copy by {@link #layerNorm} (at least one row). */
    private static final int LAYER_NORM_CHUNK = 4096;

    /**
     * layer_norm over the last axis, the same arithmetic as the reference kernel (double sums, double normalization),
     * over heap chunks of whole rows: one bulk read and one bulk write per chunk, and four running sums per reduction
     * instead of one chain of dependent adds. A row at a time with single sums measured 200 us for the encoder's
     * [64, 16, 32], chunks with four sums 73 us (standalone, 3,000 calls).
     */
    static Kernel layerNorm(Slot x, Slot scale, Slot bias, Slot out, Attributes attributes) {
        int d = (int) x.type().shape().dim(x.rank() - 1).size();
        double epsilon = attributes.getDouble("epsilon");
        float[] buf = new float[Math.max(d, LAYER_NORM_CHUNK / Math.max(1, d) * d)];
        int rowsPerChunk = d == 0 ? 0 : buf.length / d;
        float[] g = new float[d];
        float[] b = new float[d];
        FloatBuffer src = x.buffer();
        FloatBuffer dst = out.buffer();
        return batch -> {
            scale.buffer().get(scale.offset(), g, 0, d);
            bias.buffer().get(bias.offset(), b, 0, d);
            int rows = d == 0 ? 0 : x.elementCount(batch) / d;
            for (int r0 = 0; r0 < rows; r0 += rowsPerChunk) {
                int count = Math.min(rowsPerChunk, rows - r0);
                src.get(x.offset() + r0 * d, buf, 0, count * d);
                for (int r = 0; r < count; r++) {
                    normalizeRow(buf, r * d, d, g, b, epsilon);
                }
                dst.put(out.offset() + r0 * d, buf, 0, count * d);
            }
        };
    }

    private static void normalizeRow(float[] row, int base, int d, float[] g, float[] b, double epsilon) {
        double mean = ElementwiseKernels.sum(row, base, d) / d;
        double q0 = 0;
        double q1 = 0;
        double q2 = 0;
        double q3 = 0;
        int i = 0;
        for (; i + 3 < d; i += 4) {
            double c0 = row[base + i] - mean;
            double c1 = row[base + i + 1] - mean;
            double c2 = row[base + i + 2] - mean;
            double c3 = row[base + i + 3] - mean;
            q0 += c0 * c0;
            q1 += c1 * c1;
            q2 += c2 * c2;
            q3 += c3 * c3;
        }
        for (; i < d; i++) {
            double c = row[base + i] - mean;
            q0 += c * c;
        }
        double inv = 1.0 / Math.sqrt((q0 + q1 + q2 + q3) / d + epsilon);
        for (int k = 0; k < d; k++) {
            row[base + k] = (float) ((row[base + k] - mean) * inv * g[k] + b[k]);
        }
    }
}
