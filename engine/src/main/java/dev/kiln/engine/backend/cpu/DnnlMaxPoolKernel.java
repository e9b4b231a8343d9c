package dev.kiln.engine.backend.cpu;

import dev.kiln.engine.backend.Slot;
import dev.kiln.engine.ir.Attributes;
import dev.kiln.engine.ops.MaxPool2dOp;
import dev.kiln.engine.ops.OpRegistry;
import org.bytedeco.dnnl.dnnl_memory_desc;
import org.bytedeco.dnnl.dnnl_primitive_desc;

import org.bytedeco.javacpp.FloatPointer;

import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DST;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_SRC;
import static org.bytedeco.dnnl.global.dnnl.dnnl_ab;
import static org.bytedeco.dnnl.global.dnnl.dnnl_reduction_primitive_desc_create;
import static org.bytedeco.dnnl.global.dnnl.dnnl_reduction_sum;
import static org.bytedeco.dnnl.global.dnnl.dnnl_forward_inference;
import static org.bytedeco.dnnl.global.dnnl.dnnl_nchw;
import static org.bytedeco.dnnl.global.dnnl.dnnl_pooling_forward_primitive_desc_create;
import static org.bytedeco.dnnl.global.dnnl.dnnl_pooling_max;

/**
 * max_pool2d as one oneDNN pooling over the batch in NCHW. oneDNN's window maximum keeps a NaN only when it is the
 * window's last element, while Kiln (like PyTorch) gives NaN for any window holding one; so the input is screened
 * first ({@link NanScreen}), and a batch with a NaN anywhere runs through Kiln's own {@link PoolKernel} instead.
 */
final class DnnlMaxPoolKernel extends DnnlKernel {
    private final Slot x;
    private final MaxPool2dOp.Geometry g;
    private final int padBottom;
    private final int padRight;
    private final long xAddress;
    private final long outAddress;
    private final PoolKernel fallback;
    private final NanScreen screen;

    private DnnlMaxPoolKernel(Slot x, Slot out, Attributes attributes, MaxPool2dOp.Geometry g, int padBottom, int padRight) {
        this.x = x;
        this.g = g;
        this.padBottom = padBottom;
        this.padRight = padRight;
        this.xAddress = address(x);
        this.outAddress = address(out);
        this.fallback = new PoolKernel(OpRegistry.MAX_POOL2D, x, out, attributes);
        this.screen = new NanScreen(x, g.c() * g.h() * g.w());
    }

    /** The kernel when oneDNN is enabled and its padding can express the window layout; null otherwise. */
    static DnnlMaxPoolKernel create(Slot x, Slot out, Attributes attributes) {
        if (!Dnnl.enabled() || Boolean.getBoolean("kiln.onednn.noPool")) {
            return null;
        }
        MaxPool2dOp.Geometry g = MaxPool2dOp.geometry(OpRegistry.MAX_POOL2D, x.type().shape(), attributes);
        int[] pad = padding(g);
        return pad == null ? null : new DnnlMaxPoolKernel(x, out, attributes, g, pad[0], pad[1]);
    }

    /** The bottom and right padding that make oneDNN's pooling output Kiln's (floor) size, or null when none can. */
    static int[] padding(MaxPool2dOp.Geometry g) {
        int padBottom = (g.oh() - 1) * g.sh() + g.kh() - g.h() - g.pt();
        int padRight = (g.ow() - 1) * g.sw() + g.kw() - g.w() - g.pl();
        return padBottom < 0 || padRight < 0 || padBottom >= g.kh() || padRight >= g.kw() ? null : new int[] {padBottom, padRight};
    }

    @Override
    public void run(long batch) {
        long n = x.size(0, batch);
        if (n == 0) {
            return;
        }
        if (screen.mayHoldNaN(n)) {
            fallback.run(batch);
            return;
        }
        execute(n, "running a max pooling");
    }

    /**
     * The sum of the whole input through a oneDNN reduction (JIT, at memory speed): NaN when the input holds a NaN,
     * and also when it holds both infinities or its partial sums overflow both ways; those rare false alarms only send
     * the batch to the slower exact kernel. Measured against a bulk copy to the heap and a compare per element: that
     * screen cost as much as the pooling itself.
     */
    static final class NanScreen extends DnnlKernel {
        /** Below this many floats the screen is a plain loop (oneDNN refuses a reduction of one element to one). */
        static final long SMALL = 4096;
        private final Slot x;
        private final long xAddress;
        private final long perItem;
        private final FloatPointer sum = new FloatPointer(1);

        NanScreen(Slot x, long perItem) {
            this.x = x;
            this.xAddress = address(x);
            this.perItem = perItem;
        }

        boolean mayHoldNaN(long n) {
            if (n * perItem <= SMALL) {
                boolean any = false;
                for (int i = 0; i < n * perItem; i++) {
                    float v = x.get(i);
                    any |= v != v;
                }
                return any;
            }
            execute(n, "screening a max pooling's input for NaN");
            float s = sum.get(0);
            return s != s;
        }

        @Override
        public void run(long batch) {
            throw new UnsupportedOperationException("NanScreen runs through mayHoldNaN");
        }

        @Override
        protected void build(Plan plan, long n) {
            plan.description = String.format("sum of %d x %d floats", n, perItem);
            dnnl_memory_desc src = plan.desc(new long[] {n, perItem}, dnnl_ab);
            dnnl_memory_desc dst = plan.desc(new long[] {1, 1}, dnnl_ab);
            dnnl_primitive_desc pd = new dnnl_primitive_desc();
            Dnnl.check(dnnl_reduction_primitive_desc_create(pd, Dnnl.engine(), dnnl_reduction_sum, src, dst, 0f, 0f, null),
                    () -> "creating a " + plan.description);
            plan.create(pd);
            plan.arguments(DNNL_ARG_SRC, plan.memory(src, xAddress), DNNL_ARG_DST, plan.memory(dst, sum.address()));
        }

        @Override
        public void close() {
            super.close();
            sum.close();
        }
    }

    @Override
    protected void build(Plan plan, long n) {
        plan.description = String.format("max_pool2d of %d images %dx%dx%d, window %dx%d", n, g.c(), g.h(), g.w(), g.kh(), g.kw());
        dnnl_memory_desc src = plan.desc(new long[] {n, g.c(), g.h(), g.w()}, dnnl_nchw);
        dnnl_memory_desc dst = plan.desc(new long[] {n, g.c(), g.oh(), g.ow()}, dnnl_nchw);
        dnnl_primitive_desc pd = new dnnl_primitive_desc();
        Dnnl.check(dnnl_pooling_forward_primitive_desc_create(pd, Dnnl.engine(), dnnl_forward_inference, dnnl_pooling_max, src, dst,
                        new long[] {g.sh(), g.sw()}, new long[] {g.kh(), g.kw()}, new long[] {0, 0},
                        new long[] {g.pt(), g.pl()}, new long[] {padBottom, padRight}, null),
                () -> "creating a " + plan.description);
        plan.create(pd);
        plan.arguments(DNNL_ARG_SRC, plan.memory(src, xAddress), DNNL_ARG_DST, plan.memory(dst, outAddress));
    }

    @Override
    public void close() {
        super.close();
        screen.close();
        fallback.close();
    }
}
