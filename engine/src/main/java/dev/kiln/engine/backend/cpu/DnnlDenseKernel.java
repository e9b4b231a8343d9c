package dev.kiln.engine.backend.cpu;

import dev.kiln.engine.backend.Kernel;
import dev.kiln.engine.backend.Slot;
import dev.kiln.engine.ir.Node;
import dev.kiln.engine.ops.Activation;
import dev.kiln.engine.ops.DenseOp;
import org.bytedeco.dnnl.dnnl_exec_arg_t;
import org.bytedeco.dnnl.dnnl_memory;
import org.bytedeco.dnnl.dnnl_memory_desc;
import org.bytedeco.dnnl.dnnl_primitive;
import org.bytedeco.dnnl.dnnl_primitive_attr;
import org.bytedeco.dnnl.dnnl_primitive_desc;
import org.bytedeco.dnnl.dnnl_stream;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.Pointer;

import java.nio.ByteBuffer;

import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_BIAS;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DST;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_SRC;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_WEIGHTS;
import static org.bytedeco.dnnl.global.dnnl.dnnl_ab;
import static org.bytedeco.dnnl.global.dnnl.dnnl_ba;
import static org.bytedeco.dnnl.global.dnnl.dnnl_matmul_primitive_desc_create;
import static org.bytedeco.dnnl.global.dnnl.dnnl_primitive_attr_create;
import static org.bytedeco.dnnl.global.dnnl.dnnl_primitive_attr_destroy;
import static org.bytedeco.dnnl.global.dnnl.dnnl_primitive_create;
import static org.bytedeco.dnnl.global.dnnl.dnnl_primitive_desc_destroy;
import static org.bytedeco.dnnl.global.dnnl.dnnl_primitive_destroy;
import static org.bytedeco.dnnl.global.dnnl.dnnl_primitive_execute;
import static org.bytedeco.dnnl.global.dnnl.dnnl_stream_create;
import static org.bytedeco.dnnl.global.dnnl.dnnl_stream_default_flags;
import static org.bytedeco.dnnl.global.dnnl.dnnl_stream_destroy;
import static org.bytedeco.dnnl.global.dnnl.dnnl_stream_wait;

/**
 * {@code activation(x W^T + b)} as one oneDNN matmul that adds the bias while each output tile is in registers,
 * then the activation as Kiln's vector epilogue ({@link Epilogue}). The relu stays in Kiln's epilogue on purpose:
 * oneDNN's relu post-op is {@code max(x, 0)} in an operand order that turns NaN into 0, and Kiln keeps PyTorch's
 * NaN propagation (tested); fusing it measured within the noise (300-313k vs 283-306k rows/s for the seed MLP,
 * BENCHMARKS.md). A single row goes through OpenBLAS's sgemv ({@link BlasDenseKernel}), which is faster there.
 *
 * <p>oneDNN compiles a primitive for one shape, so the kernel keeps a plan (primitive, memory objects over the slots'
 * buffers, argument list) for each of the last {@value #PLANS} row counts it ran; an executor sees one or two (its
 * batch size and a last, shorter batch). A new row count costs one primitive creation (oneDNN's primitive cache makes
 * repeats cheap); a batch of a known size allocates nothing. The kernel owns every oneDNN object it creates and
 * frees them in {@link #close}.
 */
final class DnnlDenseKernel implements Kernel {
    static final int PLANS = 4;

    private final int k;
    private final int n;
    private final long xAddress;
    private final long outAddress;
    private final Activation activation;
    private final Epilogue epilogue;
    private final ByteBuffer out;
    private final int outByteOffset;
    private final Slot x;
    private final BlasDenseKernel singleRow;

    private final dnnl_stream stream = new dnnl_stream();
    private final dnnl_memory_desc weightsDesc;
    private final dnnl_memory weights;
    private final dnnl_memory_desc biasDesc;
    private final dnnl_memory bias;
    private final Plan[] plans = new Plan[PLANS];
    private long uses;
    private boolean closed;

    DnnlDenseKernel(Node node, Slot[] inputs, Slot out) {
        this.x = inputs[0];
        Slot w = inputs[1];
        this.k = (int) w.size(1, 1);
        this.n = (int) w.size(0, 1);
        this.activation = DenseOp.activation(node.attributes());
        this.epilogue = Epilogue.create(activation);
        this.out = BlasDenseKernel.bytes(out);
        this.outByteOffset = out.offset() * 4;
        this.xAddress = address(x);
        this.outAddress = address(out);
        this.singleRow = new BlasDenseKernel(node, inputs, out);
        dnnl_memory_desc wd = null;
        dnnl_memory wm = null;
        dnnl_memory_desc bd = null;
        dnnl_memory bm = null;
        try {
            Dnnl.check(dnnl_stream_create(stream, Dnnl.engine(), dnnl_stream_default_flags), "creating a stream");
            // W is [n, k] row-major: as the matmul's [k, n] weights it is the column-major ("ba") layout.
            wd = Dnnl.desc(new long[] {k, n}, dnnl_ba);
            wm = Dnnl.memory(wd, new AddressPointer(address(w)));
            if (inputs.length > 2) {
                bd = Dnnl.desc(new long[] {1, n}, dnnl_ab);
                bm = Dnnl.memory(bd, new AddressPointer(address(inputs[2])));
            }
        } catch (RuntimeException e) {
            Dnnl.destroy(wm);
            Dnnl.destroy(wd);
            Dnnl.destroy(bm);
            Dnnl.destroy(bd);
            if (!stream.isNull()) {
                dnnl_stream_destroy(stream);
            }
            throw e;
        }
        this.weightsDesc = wd;
        this.weights = wm;
        this.biasDesc = bd;
        this.bias = bm;
    }

    /** The absolute address of a slot's first element (its buffer is direct: the arena, a bound input or a weight). */
    static long address(Slot slot) {
        FloatPointer base = new FloatPointer(slot.buffer());
        return base.address() + 4L * slot.offset();
    }

    @Override
    public void run(long batch) {
        int rows = k == 0 ? 0 : x.elementCount(batch) / k;
        if (rows == 0) {
            return;
        }
        if (rows == 1) {
            singleRow.run(batch);
            return;
        }
        Plan plan = plan(rows);
        Dnnl.check(dnnl_primitive_execute(plan.primitive, stream, plan.argCount, plan.args), "running a dense layer's matmul");
        Dnnl.check(dnnl_stream_wait(stream), "waiting for a dense layer's matmul");
        if (activation != Activation.NONE) {
            epilogue.apply(out, outByteOffset, null, 0, rows, n);
        }
    }

    private Plan plan(int rows) {
        uses++;
        Plan oldest = null;
        int free = -1;
        for (int i = 0; i < plans.length; i++) {
            Plan p = plans[i];
            if (p == null) {
                free = free < 0 ? i : free;
            } else if (p.rows == rows) {
                p.lastUse = uses;
                return p;
            } else if (oldest == null || p.lastUse < oldest.lastUse) {
                oldest = p;
            }
        }
        if (free < 0) {
            for (int i = 0; i < plans.length; i++) {
                if (plans[i] == oldest) {
                    free = i;
                    plans[i] = null;
                    oldest.close();
                }
            }
        }
        Plan p = new Plan(rows);
        p.lastUse = uses;
        plans[free] = p;
        return p;
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        for (int i = 0; i < plans.length; i++) {
            if (plans[i] != null) {
                plans[i].close();
                plans[i] = null;
            }
        }
        Dnnl.destroy(weights);
        Dnnl.destroy(weightsDesc);
        Dnnl.destroy(bias);
        Dnnl.destroy(biasDesc);
        dnnl_stream_destroy(stream);
    }

    /** The compiled matmul for one row count and its arguments over the slots' buffers. */
    private final class Plan {
        final int rows;
        final dnnl_memory_desc srcDesc;
        final dnnl_memory_desc dstDesc;
        final dnnl_memory src;
        final dnnl_memory dst;
        final dnnl_primitive primitive = new dnnl_primitive();
        final dnnl_exec_arg_t args;
        final int argCount;
        long lastUse;

        Plan(int rows) {
            this.rows = rows;
            dnnl_memory_desc sd = null;
            dnnl_memory_desc dd = null;
            dnnl_memory s = null;
            dnnl_memory d = null;
            dnnl_primitive_attr attr = new dnnl_primitive_attr();
            dnnl_primitive_desc pd = new dnnl_primitive_desc();
            try {
                sd = Dnnl.desc(new long[] {rows, k}, dnnl_ab);
                dd = Dnnl.desc(new long[] {rows, n}, dnnl_ab);
                s = Dnnl.memory(sd, new AddressPointer(xAddress));
                d = Dnnl.memory(dd, new AddressPointer(outAddress));
                Dnnl.check(dnnl_primitive_attr_create(attr), "creating primitive attributes");
                Dnnl.check(dnnl_matmul_primitive_desc_create(pd, Dnnl.engine(), sd, weightsDesc, biasDesc, dd, attr),
                        String.format("creating a matmul for [%d, %d] x [%d, %d]", rows, k, k, n));
                Dnnl.check(dnnl_primitive_create(primitive, pd), "creating a matmul primitive");
            } catch (RuntimeException e) {
                Dnnl.destroy(s);
                Dnnl.destroy(d);
                Dnnl.destroy(sd);
                Dnnl.destroy(dd);
                throw e;
            } finally {
                if (!pd.isNull()) {
                    dnnl_primitive_desc_destroy(pd);
                }
                if (!attr.isNull()) {
                    dnnl_primitive_attr_destroy(attr);
                }
            }
            this.srcDesc = sd;
            this.dstDesc = dd;
            this.src = s;
            this.dst = d;
            this.argCount = bias != null ? 4 : 3;
            this.args = new dnnl_exec_arg_t(argCount);
            args.position(0).arg(DNNL_ARG_SRC).memory(src);
            args.position(1).arg(DNNL_ARG_WEIGHTS).memory(weights);
            args.position(2).arg(DNNL_ARG_DST).memory(dst);
            if (bias != null) {
                args.position(3).arg(DNNL_ARG_BIAS).memory(bias);
            }
            args.position(0);
        }

        void close() {
            if (!primitive.isNull()) {
                dnnl_primitive_destroy(primitive);
            }
            Dnnl.destroy(src);
            Dnnl.destroy(dst);
            Dnnl.destroy(srcDesc);
            Dnnl.destroy(dstDesc);
            args.close();
        }
    }

    /** A JavaCPP pointer at an absolute address with position 0 (oneDNN takes {@code void*} data handles). */
    static final class AddressPointer extends Pointer {
        AddressPointer(long address) {
            this.address = address;
        }
    }
}
