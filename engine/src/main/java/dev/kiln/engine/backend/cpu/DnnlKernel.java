package dev.kiln.engine.backend.cpu;

import dev.kiln.engine.backend.Kernel;
import dev.kiln.engine.backend.Slot;
import org.bytedeco.dnnl.dnnl_exec_arg_t;
import org.bytedeco.dnnl.dnnl_memory;
import org.bytedeco.dnnl.dnnl_memory_desc;
import org.bytedeco.dnnl.dnnl_post_ops;
import org.bytedeco.dnnl.dnnl_primitive;
import org.bytedeco.dnnl.dnnl_primitive_attr;
import org.bytedeco.dnnl.dnnl_primitive_desc;
import org.bytedeco.dnnl.dnnl_stream;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.Pointer;

import java.util.ArrayList;
import java.util.List;

import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_FROM;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_TO;
import static org.bytedeco.dnnl.global.dnnl.dnnl_memory_desc_clone;
import static org.bytedeco.dnnl.global.dnnl.dnnl_memory_desc_equal;
import static org.bytedeco.dnnl.global.dnnl.dnnl_memory_desc_get_size;
import static org.bytedeco.dnnl.global.dnnl.dnnl_primitive_desc_query_md;
import static org.bytedeco.dnnl.global.dnnl.dnnl_query_weights_md;
import static org.bytedeco.dnnl.global.dnnl.dnnl_reorder_primitive_desc_create;
import static org.bytedeco.dnnl.global.dnnl.dnnl_eltwise_gelu_erf;
import static org.bytedeco.dnnl.global.dnnl.dnnl_post_ops_append_eltwise;
import static org.bytedeco.dnnl.global.dnnl.dnnl_post_ops_create;
import static org.bytedeco.dnnl.global.dnnl.dnnl_post_ops_destroy;
import static org.bytedeco.dnnl.global.dnnl.dnnl_primitive_attr_create;
import static org.bytedeco.dnnl.global.dnnl.dnnl_primitive_attr_destroy;
import static org.bytedeco.dnnl.global.dnnl.dnnl_primitive_attr_set_post_ops;
import static org.bytedeco.dnnl.global.dnnl.dnnl_primitive_create;
import static org.bytedeco.dnnl.global.dnnl.dnnl_primitive_desc_destroy;
import static org.bytedeco.dnnl.global.dnnl.dnnl_primitive_destroy;
import static org.bytedeco.dnnl.global.dnnl.dnnl_primitive_execute;
import static org.bytedeco.dnnl.global.dnnl.dnnl_stream_create;
import static org.bytedeco.dnnl.global.dnnl.dnnl_stream_default_flags;
import static org.bytedeco.dnnl.global.dnnl.dnnl_stream_destroy;
import static org.bytedeco.dnnl.global.dnnl.dnnl_stream_wait;

/**
 * What Kiln's oneDNN kernels share: a stream of their own (an executor runs on one thread at a time, and oneDNN
 * streams must not be shared between threads), and a plan per batch size. oneDNN compiles a primitive for one shape,
 * so the kernel keeps a {@link Plan} (primitive, memory objects over the slots' buffers, argument list) for each of the
 * last {@value #PLANS} batch sizes it ran; an executor sees one or two (its batch size and a last, shorter batch). A
 * new size costs one primitive creation (oneDNN's primitive cache makes repeats cheap); a batch of a known size
 * allocates nothing. The kernel owns every oneDNN object it creates and frees each once, in {@link #close}.
 */
abstract class DnnlKernel implements Kernel {
    static final int PLANS = 4;

    protected final dnnl_stream stream = new dnnl_stream();
    private final Plan[] plans = new Plan[PLANS];
    /** Descriptors and memory objects shared by every plan (weights, bias), freed with the kernel. */
    protected final Plan shared = new Plan(-1);
    private long uses;
    private boolean closed;

    protected DnnlKernel() {
        // The stream is created on first use, so a subclass constructor that throws leaves nothing to free.
    }

    /** Builds the plan for {@code batch}: called on the first run of each new batch size. */
    protected abstract void build(Plan plan, long batch);

    /** Runs the primitive planned for {@code batch} (planning it first when the size is new) and waits for it. */
    protected final void execute(long batch, String what) {
        // Threads first: building a plan may run oneDNN too (a weights reorder).
        Dnnl.applyThreads();
        Plan plan = plan(batch);
        submit(plan, what);
        await(plan, what);
    }

    /** Queues every step of {@code plan} on the stream, in order (the caller waits with {@link #await}). */
    protected final void submit(Plan plan, String what) {
        // Status checked inline: a capturing lambda or a message built per call would allocate on every batch.
        for (int i = 0; i < plan.steps; i++) {
            int status = dnnl_primitive_execute(plan.primitives.get(i), stream, plan.argCounts[i], plan.argLists.get(i));
            if (status != 0) {
                Dnnl.check(status, what + " (" + plan.description + ", step " + (i + 1) + " of " + plan.steps + ")");
            }
        }
    }

    /** Waits for what was queued on the stream. */
    protected final void await(Plan plan, String what) {
        int status = dnnl_stream_wait(stream);
        if (status != 0) {
            Dnnl.check(status, what + " (" + plan.description + ")");
        }
    }

    /** The plan for {@code batch} rows, built on first use (threads must already be applied: {@link Dnnl#applyThreads}). */
    protected final Plan plan(long batch) {
        if (stream.isNull()) {
            Dnnl.check(dnnl_stream_create(stream, Dnnl.engine(), dnnl_stream_default_flags), "creating a stream");
        }
        uses++;
        int free = -1;
        int oldest = -1;
        for (int i = 0; i < plans.length; i++) {
            Plan p = plans[i];
            if (p == null) {
                free = free < 0 ? i : free;
            } else if (p.batch == batch) {
                p.lastUse = uses;
                return p;
            } else if (oldest < 0 || p.lastUse < plans[oldest].lastUse) {
                oldest = i;
            }
        }
        if (free < 0) {
            free = oldest;
            Plan evicted = plans[free];
            plans[free] = null;
            evicted.close();
        }
        Plan p = new Plan(batch);
        boolean built = false;
        try {
            build(p, batch);
            built = true;
        } finally {
            if (!built) {
                p.close();
            }
        }
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
        shared.close();
        if (!stream.isNull()) {
            dnnl_stream_destroy(stream);
        }
    }

    /** The absolute address of a slot's first element (its buffer is direct: the arena, a bound input or a weight). */
    static long address(Slot slot) {
        // A position-0 view: JavaCPP's FloatPointer(FloatBuffer) counts a non-zero position against the address.
        FloatPointer base = new FloatPointer(slot.buffer().duplicate().clear());
        return base.address() + 4L * slot.offset();
    }

    /**
     * One compiled primitive and what it runs over. Every descriptor and memory object made through it is freed by
     * {@link #close}, whatever happened in between.
     */
    static final class Plan {
        final long batch;
        /** What the plan computes, with its shapes: for error messages. */
        String description = "";
        private final List<dnnl_memory_desc> descs = new ArrayList<>();
        private final List<dnnl_memory> memories = new ArrayList<>();
        private final List<Pointer> buffers = new ArrayList<>();
        private final List<dnnl_primitive_attr> attributes = new ArrayList<>();
        /** The steps run in order: a primitive each and its arguments (most plans have one). */
        private final List<dnnl_primitive> primitives = new ArrayList<>();
        private final List<dnnl_exec_arg_t> argLists = new ArrayList<>();
        private int[] argCounts = new int[0];
        private int steps;
        long lastUse;
        /** A chain's input and output memory objects, moved to each chunk's rows before it runs (null otherwise). */
        dnnl_memory input;
        dnnl_memory output;

        Plan(long batch) {
            this.batch = batch;
        }

        dnnl_memory_desc desc(long[] dims, int tag) {
            dnnl_memory_desc d = Dnnl.desc(dims, tag);
            descs.add(d);
            return d;
        }

        /** A plain f32 descriptor with explicit strides in elements (rows that sit apart: {rows, k} with {lda, 1}). */
        dnnl_memory_desc stridedDesc(long[] dims, long[] strides) {
            dnnl_memory_desc d = Dnnl.stridedDesc(dims, strides);
            descs.add(d);
            return d;
        }

        dnnl_memory memory(dnnl_memory_desc desc, long address) {
            dnnl_memory m = Dnnl.memory(desc, new AddressPointer(address));
            memories.add(m);
            return m;
        }

        /**
         * Memory of {@code desc}'s size that this plan owns (a chain's intermediate values), zeroed, with a memory
         * object over it.
         */
        dnnl_memory scratch(dnnl_memory_desc desc) {
            long bytes = dnnl_memory_desc_get_size(desc);
            FloatPointer data = new FloatPointer(Math.max(1, (bytes + 3) / 4));
            buffers.add(data);
            data.zero();
            return memory(desc, data.address());
        }

        /**
         * Creates the next step's primitive from {@code pd}, then frees the descriptor (the primitive keeps what it
         * needs); its arguments follow with {@link #arguments}.
         */
        void create(dnnl_primitive_desc pd) {
            dnnl_primitive primitive = new dnnl_primitive();
            try {
                Dnnl.check(dnnl_primitive_create(primitive, pd), "creating a primitive");
            } finally {
                dnnl_primitive_desc_destroy(pd);
            }
            primitives.add(primitive);
        }

        /**
         * The weights in the layout {@code pd} chose for them (oneDNN's fast convolutions want blocked weights):
         * {@code plain} itself when that is the layout, otherwise a copy reordered once into memory this plan owns.
         */
        dnnl_memory weightsFor(dnnl_primitive_desc pd, dnnl_memory_desc plainDesc, dnnl_memory plain, dnnl_stream stream) {
            dnnl_memory_desc chosen = new dnnl_memory_desc();
            Dnnl.check(dnnl_memory_desc_clone(chosen, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0)), "reading the chosen weights layout");
            descs.add(chosen);
            if (dnnl_memory_desc_equal(chosen, plainDesc) != 0) {
                return plain;
            }
            long bytes = dnnl_memory_desc_get_size(chosen);
            FloatPointer data = new FloatPointer(Math.max(1, (bytes + 3) / 4));
            buffers.add(data);
            dnnl_memory packed = memory(chosen, data.address());
            dnnl_primitive_desc reorderPd = new dnnl_primitive_desc();
            Dnnl.check(dnnl_reorder_primitive_desc_create(reorderPd, plainDesc, Dnnl.engine(), chosen, Dnnl.engine(), null), "planning a weights reorder");
            dnnl_primitive reorder = new dnnl_primitive();
            try {
                Dnnl.check(dnnl_primitive_create(reorder, reorderPd), "creating a weights reorder");
            } finally {
                dnnl_primitive_desc_destroy(reorderPd);
            }
            try (dnnl_exec_arg_t reorderArgs = new dnnl_exec_arg_t(2)) {
                reorderArgs.position(0).arg(DNNL_ARG_FROM).memory(plain);
                reorderArgs.position(1).arg(DNNL_ARG_TO).memory(packed);
                reorderArgs.position(0);
                Dnnl.check(dnnl_primitive_execute(reorder, stream, 2, reorderArgs), "reordering weights");
                Dnnl.check(dnnl_stream_wait(stream), "reordering weights");
            } finally {
                dnnl_primitive_destroy(reorder);
            }
            return packed;
        }

        /** A copy of the memory descriptor {@code pd} chose for {@code what} (a dnnl_query_*_md), freed with the plan. */
        dnnl_memory_desc query(dnnl_primitive_desc pd, int what) {
            dnnl_memory_desc chosen = new dnnl_memory_desc();
            Dnnl.check(dnnl_memory_desc_clone(chosen, dnnl_primitive_desc_query_md(pd, what, 0)), "reading a chosen memory layout");
            descs.add(chosen);
            return chosen;
        }

        /** Primitive attributes holding one post-op, oneDNN's GELU with the exact erf (freed with the plan). */
        dnnl_primitive_attr geluAttributes() {
            return eltwiseAttributes(dnnl_eltwise_gelu_erf);
        }

        /** Primitive attributes holding one eltwise post-op of algorithm {@code algorithm} (freed with the plan). */
        dnnl_primitive_attr eltwiseAttributes(int algorithm) {
            dnnl_primitive_attr attr = new dnnl_primitive_attr();
            Dnnl.check(dnnl_primitive_attr_create(attr), "creating primitive attributes");
            attributes.add(attr);
            dnnl_post_ops postOps = new dnnl_post_ops();
            Dnnl.check(dnnl_post_ops_create(postOps), "creating post-ops");
            try {
                Dnnl.check(dnnl_post_ops_append_eltwise(postOps, algorithm, 0f, 0f), "adding an eltwise post-op");
                Dnnl.check(dnnl_primitive_attr_set_post_ops(attr, postOps), "setting post-ops");
            } finally {
                dnnl_post_ops_destroy(postOps);
            }
            return attr;
        }

        /** The arguments of the step last created: pairs of (DNNL_ARG_*, memory); null memories are skipped. */
        void arguments(Object... pairs) {
            if (argLists.size() != primitives.size() - 1) {
                throw new IllegalStateException("arguments() follows create(), once per step");
            }
            int count = 0;
            for (int i = 1; i < pairs.length; i += 2) {
                count += pairs[i] != null ? 1 : 0;
            }
            dnnl_exec_arg_t args = new dnnl_exec_arg_t(count);
            argLists.add(args);
            int at = 0;
            for (int i = 0; i < pairs.length; i += 2) {
                if (pairs[i + 1] != null) {
                    args.position(at++).arg((Integer) pairs[i]).memory((dnnl_memory) pairs[i + 1]);
                }
            }
            args.position(0);
            argCounts = java.util.Arrays.copyOf(argCounts, argLists.size());
            argCounts[argLists.size() - 1] = count;
            steps = argLists.size();
        }

        void close() {
            steps = 0;
            for (dnnl_primitive primitive : primitives) {
                if (!primitive.isNull()) {
                    dnnl_primitive_destroy(primitive);
                }
            }
            primitives.clear();
            for (dnnl_memory m : memories) {
                Dnnl.destroy(m);
            }
            memories.clear();
            for (dnnl_memory_desc d : descs) {
                Dnnl.destroy(d);
            }
            descs.clear();
            for (Pointer b : buffers) {
                b.close();
            }
            buffers.clear();
            for (dnnl_primitive_attr a : attributes) {
                dnnl_primitive_attr_destroy(a);
            }
            attributes.clear();
            for (dnnl_exec_arg_t args : argLists) {
                args.close();
            }
            argLists.clear();
        }
    }

    /** A JavaCPP pointer at an absolute address with position 0 (oneDNN takes {@code void*} data handles). */
    static final class AddressPointer extends Pointer {
        AddressPointer(long address) {
            this.address = address;
        }

        /** Points this pointer elsewhere (a chain moving its input and output handles chunk by chunk, allocation-free). */
        AddressPointer at(long newAddress) {
            this.address = newAddress;
            return this;
        }
    }
}
