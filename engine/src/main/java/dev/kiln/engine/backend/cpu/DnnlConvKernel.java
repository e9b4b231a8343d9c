package dev.kiln.engine.backend.cpu;

import dev.kiln.engine.backend.Slot;
import dev.kiln.engine.ir.Attributes;
import dev.kiln.engine.ops.Activation;
import dev.kiln.engine.ops.Conv2dOp;
import org.bytedeco.dnnl.dnnl_memory;
import org.bytedeco.dnnl.dnnl_memory_desc;
import org.bytedeco.dnnl.dnnl_primitive_attr;
import org.bytedeco.dnnl.dnnl_primitive_desc;

import java.nio.ByteBuffer;

import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_BIAS;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DST;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_SRC;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_WEIGHTS;
import static org.bytedeco.dnnl.global.dnnl.dnnl_a;
import static org.bytedeco.dnnl.global.dnnl.dnnl_convolution_direct;
import static org.bytedeco.dnnl.global.dnnl.dnnl_convolution_forward_primitive_desc_create;
import static org.bytedeco.dnnl.global.dnnl.dnnl_forward_inference;
import static org.bytedeco.dnnl.global.dnnl.dnnl_format_tag_any;
import static org.bytedeco.dnnl.global.dnnl.dnnl_goihw;
import static org.bytedeco.dnnl.global.dnnl.dnnl_nchw;
import static org.bytedeco.dnnl.global.dnnl.dnnl_oihw;

/**
 * conv2d as one oneDNN convolution over the whole batch, in Kiln's NCHW layout (input, weights and output stay
 * where the memory planner put them), the bias added by oneDNN, then the activation as Kiln's epilogue over the
 * output (relu there for the same NaN reason as {@link DnnlDenseKernel}).
 */
final class DnnlConvKernel extends DnnlKernel {
    private final Slot x;
    private final Conv2dOp.Geometry g;
    private final long xAddress;
    private final long outAddress;
    private final Activation activation;
    private final Epilogue epilogue;
    private final ByteBuffer out;
    private final int outByteOffset;
    private final dnnl_memory_desc weightsDesc;
    private final dnnl_memory weights;
    private final dnnl_memory_desc biasDesc;
    private final dnnl_memory bias;

    /** Fewest input channels per group for which oneDNN's convolution beats im2col + sgemm in NCHW (see below). */
    static final int MIN_CHANNELS = 8;

    /**
     * Whether oneDNN should run this convolution: it is enabled, and the convolution has at least {@value #MIN_CHANNELS}
     * input channels per group. In NCHW oneDNN wraps its blocked-layout kernel in reorders of the input and output;
     * for the reference CNN's conv2 (8 -> 16 channels) that is still 1.8x faster than im2col + sgemm (563 vs 997 ms in
     * the profile), for its conv1 (1 -> 8) it is 1.9x slower (1,091 vs 576 ms), the reorders costing more than the
     * 1-channel GEMM saves (BENCHMARKS.md).
     */
    static boolean suits(Slot[] inputs, Attributes attributes) {
        if (!Dnnl.enabled()) {
            return false;
        }
        Conv2dOp.Geometry g = Conv2dOp.geometry(inputs[0].type().shape(), inputs[1].type().shape(), attributes);
        return g.c() / g.groups() >= MIN_CHANNELS && geometryFits(g);
    }

    /**
     * Whether every output position's window has at least one tap inside the image, along both axes. oneDNN 3.8.1's
     * brgemm convolution crashed the JVM (SIGSEGV in {@code perform_outwork}) on a window that lies entirely in the
     * padding (input 1 wide, pads 1 and 1, stride 2: both output columns read only padding); PyTorch allows such
     * windows (their output is the bias), Kiln's im2col kernel computes them, so they stay there.
     */
    static boolean geometryFits(Conv2dOp.Geometry g) {
        return everyWindowTouches(g.oh(), g.sh(), g.pt(), g.kh(), g.dh(), g.h()) && everyWindowTouches(g.ow(), g.sw(), g.pl(), g.kw(), g.dw(), g.w());
    }

    private static boolean everyWindowTouches(int outputs, int stride, int padBefore, int kernel, int dilation, int size) {
        for (int o = 0; o < outputs; o++) {
            boolean touches = false;
            for (int t = 0; t < kernel && !touches; t++) {
                int at = o * stride - padBefore + t * dilation;
                touches = at >= 0 && at < size;
            }
            if (!touches) {
                return false;
            }
        }
        return true;
    }

    /** The weights' dimensions as oneDNN takes them: [M, C, kh, kw], or [groups, M/groups, C/groups, kh, kw]. */
    static long[] weightDims(Conv2dOp.Geometry g) {
        return g.groups() == 1 ? new long[] {g.m(), g.c(), g.kh(), g.kw()}
                : new long[] {g.groups(), g.m() / g.groups(), g.c() / g.groups(), g.kh(), g.kw()};
    }

    /**
     * A forward-inference convolution of geometry {@code g} from {@code src} to {@code dst}, weights in the layout
     * oneDNN picks (reordered into it with {@link Plan#weightsFor}); the caller frees or hands over the descriptor.
     */
    static dnnl_primitive_desc describe(Plan plan, Conv2dOp.Geometry g, dnnl_memory_desc src, dnnl_memory_desc bias, dnnl_memory_desc dst,
                                        dnnl_primitive_attr attributes, java.util.function.Supplier<String> what) {
        dnnl_primitive_desc pd = new dnnl_primitive_desc();
        Dnnl.check(dnnl_convolution_forward_primitive_desc_create(pd, Dnnl.engine(), dnnl_forward_inference, dnnl_convolution_direct,
                src, plan.desc(weightDims(g), dnnl_format_tag_any), bias, dst, new long[] {g.sh(), g.sw()}, new long[] {g.dh() - 1, g.dw() - 1},
                new long[] {g.pt(), g.pl()}, new long[] {g.pb(), g.pr()}, attributes), what);
        return pd;
    }

    DnnlConvKernel(Slot[] inputs, Slot out, Attributes attributes) {
        this.x = inputs[0];
        this.g = Conv2dOp.geometry(x.type().shape(), inputs[1].type().shape(), attributes);
        if (!geometryFits(g)) {
            throw new UnsupportedOperationException("oneDNN convolution of " + x.type() + " with " + attributes
                    + ": an output window lies entirely in the padding, which oneDNN 3.8.1 crashes on; use BlasConvKernel");
        }
        this.activation = Activation.fromName(attributes.getString("activation", "none"));
        this.epilogue = Epilogue.create(activation);
        this.out = BlasDenseKernel.bytes(out);
        this.outByteOffset = out.offset() * 4;
        this.xAddress = address(x);
        this.outAddress = address(out);
        try {
            this.weightsDesc = shared.desc(weightDims(g), g.groups() == 1 ? dnnl_oihw : dnnl_goihw);
            this.weights = shared.memory(weightsDesc, address(inputs[1]));
            this.biasDesc = inputs.length > 2 ? shared.desc(new long[] {g.m()}, dnnl_a) : null;
            this.bias = inputs.length > 2 ? shared.memory(biasDesc, address(inputs[2])) : null;
        } catch (Throwable e) {
            close();
            throw e;
        }
    }

    @Override
    public void run(long batch) {
        long n = x.size(0, batch);
        if (n == 0) {
            return;
        }
        execute(n, "running a convolution");
        if (activation != Activation.NONE) {
            epilogue.apply(out, outByteOffset, null, 0, (int) (n * g.m()), g.oh() * g.ow());
        }
    }

    @Override
    protected void build(Plan plan, long n) {
        plan.description = String.format("conv2d of %d images %dx%dx%d, %d filters %dx%d", n, g.c(), g.h(), g.w(), g.m(), g.kh(), g.kw());
        dnnl_memory_desc src = plan.desc(new long[] {n, g.c(), g.h(), g.w()}, dnnl_nchw);
        dnnl_memory_desc dst = plan.desc(new long[] {n, g.m(), g.oh(), g.ow()}, dnnl_nchw);
        dnnl_primitive_desc pd = describe(plan, g, src, biasDesc, dst, null,
                () -> String.format("creating a convolution for %d images of %dx%dx%d, %d filters %dx%d", n, g.c(), g.h(), g.w(), g.m(), g.kh(), g.kw()));
        dnnl_memory packed;
        try {
            packed = plan.weightsFor(pd, weightsDesc, weights, stream);
        } catch (Throwable e) {
            org.bytedeco.dnnl.global.dnnl.dnnl_primitive_desc_destroy(pd);
            throw e;
        }
        plan.create(pd);
        plan.arguments(DNNL_ARG_SRC, plan.memory(src, xAddress), DNNL_ARG_WEIGHTS, packed, DNNL_ARG_BIAS, bias,
                DNNL_ARG_DST, plan.memory(dst, outAddress));
    }
}
