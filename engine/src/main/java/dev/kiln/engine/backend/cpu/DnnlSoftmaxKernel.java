package dev.kiln.engine.backend.cpu;

import dev.kiln.engine.backend.Slot;
import dev.kiln.engine.ir.Attributes;
import org.bytedeco.dnnl.dnnl_memory_desc;
import org.bytedeco.dnnl.dnnl_primitive_desc;

import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DST;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_SRC;
import static org.bytedeco.dnnl.global.dnnl.dnnl_ab;
import static org.bytedeco.dnnl.global.dnnl.dnnl_forward_inference;
import static org.bytedeco.dnnl.global.dnnl.dnnl_softmax_accurate;
import static org.bytedeco.dnnl.global.dnnl.dnnl_softmax_forward_primitive_desc_create;

/**
 * Softmax over the last axis as one oneDNN softmax over a {@code [rows, n]} view (the last axis is contiguous, so any
 * rank flattens to that). The JDK 17 Vector API's {@code EXP} runs at ~2.7 ns per element here, oneDNN's JIT exp a
 * fraction of that: the encoder's attention softmax went from 925 to 111 ms of its profile (BENCHMARKS.md). A row
 * holding a NaN comes out all NaN, as in PyTorch (tested), by a screen of the input after oneDNN ran.
 */
final class DnnlSoftmaxKernel extends DnnlKernel {
    private final Slot in;
    private final int n;
    private final long inAddress;
    private final long outAddress;
    private final Slot out;
    /** Rows of the input read in bulk for the NaN screen. */
    private final float[] chunk;
    private final int rowsPerChunk;
    private final java.nio.ByteBuffer inBytes;
    private final int inByteOffset;

    private DnnlSoftmaxKernel(Slot in, Slot out, int n) {
        this.in = in;
        this.out = out;
        this.n = n;
        this.rowsPerChunk = Math.max(1, 4096 / n);
        this.chunk = new float[rowsPerChunk * n];
        this.inAddress = address(in);
        this.outAddress = address(out);
        this.inBytes = BlasDenseKernel.bytes(in);
        this.inByteOffset = in.offset() * 4;
    }

    /** The kernel when the softmax is over a concrete last axis and oneDNN is enabled (and not switched off); null otherwise. */
    static DnnlSoftmaxKernel create(Slot in, Slot out, Attributes attributes) {
        int axis = in.type().shape().normalizeAxis((int) attributes.getLong("axis", -1));
        if (!Dnnl.enabled() || Boolean.getBoolean("kiln.onednn.noSoftmax") || axis != in.rank() - 1 || in.type().shape().dim(axis).isSymbolic()) {
            return null;
        }
        int n = (int) in.type().shape().dim(axis).size();
        return n == 0 ? null : new DnnlSoftmaxKernel(in, out, n);
    }

    @Override
    public void run(long batch) {
        int rows = in.elementCount(batch) / n;
        if (rows > 0) {
            execute(rows, "running a softmax");
            propagateNaN(rows);
        }
    }

    /** NaN or +Inf: a row holding one is all NaN in PyTorch (NaN propagates; +Inf - +Inf is NaN). */
    private static boolean unfit(float v) {
        return v != v || v == Float.POSITIVE_INFINITY;
    }

    /**
     * oneDNN's row maximum drops NaN (a row with a NaN measured 0.0 where PyTorch gives NaN) and a row with +Inf came
     * out [NaN, 0, 0, 0] instead of all NaN, so rows of the input holding either are written as all NaN afterwards.
     * (A row of only -Inf already comes out all NaN.)
     */
    private void propagateNaN(int rows) {
        // First one vectorized pass for any non-finite value at all (a third of the kernel's time as a compare per
        // element: 42 of 140 us for the encoder's attention); only from the first such row on, the exact screen.
        int firstBad = FiniteCheck.firstNonFinite(inBytes, inByteOffset, rows * n);
        if (firstBad < 0) {
            return;
        }
        java.nio.FloatBuffer src = in.buffer();
        for (int first = firstBad / n; first < rows; first += rowsPerChunk) {
            int count = Math.min(rowsPerChunk, rows - first);
            int length = count * n;
            src.get(in.offset() + first * n, chunk, 0, length);
            boolean any = false;
            for (int i = 0; i < length; i++) {
                any |= unfit(chunk[i]);
            }
            if (!any) {
                continue;
            }
            for (int r = 0; r < count; r++) {
                for (int i = r * n; i < (r + 1) * n; i++) {
                    if (unfit(chunk[i])) {
                        int at = out.offset() + (first + r) * n;
                        for (int j = 0; j < n; j++) {
                            out.buffer().put(at + j, Float.NaN);
                        }
                        break;
                    }
                }
            }
        }
    }

    @Override
    protected void build(Plan plan, long rows) {
        plan.description = String.format("softmax over [%d, %d]", rows, n);
        dnnl_memory_desc src = plan.desc(new long[] {rows, n}, dnnl_ab);
        dnnl_memory_desc dst = plan.desc(new long[] {rows, n}, dnnl_ab);
        dnnl_primitive_desc pd = new dnnl_primitive_desc();
        Dnnl.check(dnnl_softmax_forward_primitive_desc_create(pd, Dnnl.engine(), dnnl_forward_inference, dnnl_softmax_accurate, src, dst, 1, null),
                String.format("creating a softmax over [%d, %d]", rows, n));
        plan.create(pd);
        plan.arguments(DNNL_ARG_SRC, plan.memory(src, inAddress), DNNL_ARG_DST, plan.memory(dst, outAddress));
    }
}
