package dev.kiln.engine.backend.cpu;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;
import dev.kiln.engine.backend.Kernel;
import dev.kiln.engine.backend.Slot;
import dev.kiln.engine.exec.CompiledModel;
import dev.kiln.engine.exec.Executor;
import dev.kiln.engine.ir.Graph;
import dev.kiln.engine.ir.Node;
import dev.kiln.engine.ir.Value;
import dev.kiln.engine.ops.OpDef;
import dev.kiln.engine.ops.OpRegistry;
import dev.kiln.engine.plan.MemoryPlan;
import dev.kiln.engine.plan.MemoryPlanner;
import org.bytedeco.javacpp.FloatPointer;

import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * Runs a linear schedule of kernels over one off-heap arena laid out by the {@link MemoryPlanner}. Owns the arena.
 * All kernels, slots and views are built when the arena is (at creation and when a larger batch grows it), so
 * {@link #run} allocates nothing.
 * <p>
 * Bound inputs: the kernels read each input where the schedule was built to find it. {@link #bindInput} and
 * {@link #unbindInputs} only record what is wanted; the next call that reads or writes the buffers rebuilds the
 * schedule when that differs from the memory it was built for (by address and size). A pooled executor that a task
 * binds to its batch, the pool unbinds, and the next task binds to a batch at the same address (Arrow's pooled
 * allocator hands the same memory back) is not rebuilt at all: a rebuild plans the arena, allocates it and creates
 * every kernel again, oneDNN primitives included, which made up most of a Spark partition's fixed cost.
 * <p>
 * Rows bound in place ({@link #bindInputRows}: batch rows some floats apart, as in a caller's own row format): a dense
 * layer reading the input as {@code [batch, k]} gets them as they are (oneDNN's matmul takes the leading dimension);
 * anything else that reads the input (another op, a view of it, the input as a graph output) reads a packed copy the
 * schedule makes first, into the arena slot the memory plan gave the input.
 */
final class CpuExecutor implements Executor {
    private final CpuLoadedModel loaded;
    private final Graph graph;
    private FloatPointer arena;
    private FloatBuffer arenaView;
    private Kernel[] kernels;
    private Slot[] inputSlots;
    private Slot[] outputSlots;
    private long capacity;
    private long lastBatch = -1;
    private boolean closed;
    /** The buffers wanted per input (null: the arena's own), and their addresses. */
    private final java.nio.ByteBuffer[] boundInputs;
    private final long[] boundAddresses;
    /** Per input, floats between bound rows, or 0 for packed rows (and for the arena's own). */
    private final int[] boundStrides;
    /** What the schedule was built for: per input the address and size of its bound buffer, or -1 for the arena. */
    private final long[] builtAddresses;
    private final long[] builtBytes;
    private final int[] builtStrides;
    /** Runs of layers that execute as one oneDNN chain (decided once, from the graph). */
    private final List<List<Node>> chains;

    CpuExecutor(CpuLoadedModel loaded, long capacity) {
        this.loaded = loaded;
        this.graph = loaded.model().graph();
        this.chains = DnnlChainKernel.runs(graph);
        this.boundInputs = new java.nio.ByteBuffer[graph.inputs().size()];
        this.boundAddresses = new long[boundInputs.length];
        this.builtAddresses = new long[boundInputs.length];
        this.builtBytes = new long[boundInputs.length];
        this.boundStrides = new int[boundInputs.length];
        this.builtStrides = new int[boundInputs.length];
        build(Math.max(1, capacity));
    }

    private void build(long newCapacity) {
        MemoryPlan plan = MemoryPlanner.plan(graph, newCapacity, DnnlChainKernel.liveUntil(graph, chains));
        FloatPointer newArena = new FloatPointer(Math.max(16, plan.arenaElements()));
        try {
            build(plan, newArena, newCapacity);
        } catch (RuntimeException e) {
            newArena.close();
            throw e;
        }
    }

    private void build(MemoryPlan plan, FloatPointer newArena, long newCapacity) {
        FloatBuffer newView = newArena.asBuffer();
        Map<Value, FloatBuffer> bound = new IdentityHashMap<>();
        // Inputs bound to rows apart: the slot dense layers read in place; everything else uses the arena's slot.
        Map<Value, Slot> strided = new IdentityHashMap<>();
        for (int i = 0; i < boundInputs.length; i++) {
            if (boundInputs[i] != null) {
                Value input = graph.inputs().get(i);
                checkBinding(i, boundInputs[i], newCapacity, boundStrides[i]);
                FloatBuffer view = boundInputs[i].duplicate().order(java.nio.ByteOrder.LITTLE_ENDIAN).clear().asFloatBuffer();
                if (boundStrides[i] == 0) {
                    bound.put(input, view);
                } else {
                    strided.put(input, new Slot(view, 0, input.type(), boundStrides[i]));
                }
            }
        }
        // Strided inputs some reader needs packed (then copied into the arena before the first kernel runs).
        java.util.Set<Value> packedCopy = java.util.Collections.newSetFromMap(new IdentityHashMap<>());
        Map<Value, Slot> slots = new IdentityHashMap<>();
        for (Map.Entry<Value, Integer> e : plan.offsets().entrySet()) {
            FloatBuffer external = bound.get(plan.roots().get(e.getKey()));
            slots.put(e.getKey(), external != null ? new Slot(external, 0, e.getKey().type()) : new Slot(newView, e.getValue(), e.getKey().type()));
        }
        for (Map.Entry<Value, Value> e : plan.staticAliases().entrySet()) {
            slots.put(e.getKey(), new Slot(loaded.view(e.getValue()), 0, e.getKey().type()));
        }
        List<ScheduledNode> steps = new ArrayList<>();
        List<Kernel> schedule = null;
        Slot[] newInputs;
        Slot[] newOutputs;
        try {
            for (Node node : graph.nodes()) {
                if (CpuLoadedModel.isSource(node)) {
                    continue;
                }
                OpDef def = OpRegistry.get(node.op());
                Slot[] in = slotsOf(node.inputs(), slots);
                Slot[] out = slotsOf(node.outputs(), slots);
                Kernel kernel = null;
                try {
                    boolean fixedWeights = node.inputs().stream().skip(1).allMatch(v -> CpuBackend.isFixed(graph, v));
                    Slot rows = def.aliasesInput() ? null : strided.get(node.input(0));
                    if (rows != null && node.op().equals(OpRegistry.DENSE) && rows.rank() == 2) {
                        Slot[] inPlace = in.clone();
                        inPlace[0] = rows;
                        kernel = CpuBackend.specialised(node, inPlace, out, fixedWeights);
                        if (kernel instanceof DnnlDenseKernel) {
                            in = inPlace;
                        } else {
                            kernel.close();
                            kernel = null;
                        }
                    }
                    for (int k = 0; k < in.length; k++) {
                        Value root = plan.roots().get(node.input(k));
                        if (root != null && strided.containsKey(root) && !in[k].strided()) {
                            packedCopy.add(root);
                        }
                    }
                    if (def.aliasesInput()) {
                        continue;
                    }
                    if (kernel == null) {
                        kernel = CpuBackend.specialised(node, in, out, fixedWeights);
                    }
                } catch (KilnException e) {
                    throw new KilnException(e.code(), "Building the CPU kernel of " + node.describe() + " " + java.util.Arrays.stream(in)
                            .map(slot -> slot.type().toString()).toList() + ": " + e.getMessage(), e);
                }
                steps.add(new ScheduledNode(node, in, out, kernel != null ? kernel : def.newKernel(in, out, node.attributes())));
            }
            for (Value output : graph.outputs()) {
                Value root = plan.roots().get(output);
                if (root != null && strided.containsKey(root)) {
                    packedCopy.add(root);
                }
            }
            schedule = DnnlChainKernel.fuse(steps, chains, newCapacity);
            newInputs = slotsOf(graph.inputs(), slots);
            for (int i = 0; i < newInputs.length; i++) {
                Slot rows = strided.get(graph.inputs().get(i));
                if (rows != null) {
                    if (packedCopy.contains(graph.inputs().get(i))) {
                        schedule.add(0, KernelProfile.wrap("packed copy of input " + graph.inputs().get(i).name(), new PackRows(rows, newInputs[i])));
                    }
                    newInputs[i] = rows;
                }
            }
            newOutputs = slotsOf(graph.outputs(), slots);
        } catch (Throwable e) {
            // Chains close the kernels they took over; anything not yet fused is closed step by step.
            closeAll(schedule != null ? schedule.toArray(new Kernel[0]) : steps.stream().map(ScheduledNode::kernel).toArray(Kernel[]::new));
            throw e;
        }
        if (arena != null) {
            // Keep inputs already set: copy them into the new arena.
            for (int i = 0; i < newInputs.length; i++) {
                if (newInputs[i].buffer() != newView || inputSlots[i].buffer() != arenaView) {
                    continue;
                }
                int n = inputSlots[i].elementCount(capacity);
                for (int j = 0; j < n; j++) {
                    newInputs[i].put(j, inputSlots[i].get(j));
                }
            }
            closeAll(kernels);
            arena.close();
        }
        arena = newArena;
        arenaView = newView;
        lastBatch = -1;
        for (int i = 0; i < boundInputs.length; i++) {
            builtAddresses[i] = boundInputs[i] == null ? -1 : boundAddresses[i];
            builtBytes[i] = boundInputs[i] == null ? -1 : boundInputs[i].capacity();
            builtStrides[i] = boundInputs[i] == null ? 0 : boundStrides[i];
        }
        kernels = schedule.toArray(new Kernel[0]);
        inputSlots = newInputs;
        outputSlots = newOutputs;
        capacity = newCapacity;
    }

    /** The schedule as built (for tests: which kernels the backend chose). */
    List<Kernel> schedule() {
        checkOpen();
        sync();
        return List.of(kernels);
    }

    /** Rebuilds the schedule when the inputs wanted are not the memory it was built to read; a no-op otherwise. */
    private void sync() {
        for (int i = 0; i < boundInputs.length; i++) {
            boolean same = boundInputs[i] == null
                    ? builtAddresses[i] == -1
                    : builtAddresses[i] == boundAddresses[i] && builtBytes[i] == boundInputs[i].capacity() && builtStrides[i] == boundStrides[i];
            if (!same) {
                build(capacity);
                return;
            }
        }
    }

    /** The packed copy of an input bound to rows apart, for the readers that need it packed: row after row. */
    static final class PackRows implements Kernel {
        private final FloatBuffer from;
        private final FloatBuffer to;
        private final int fromOffset;
        private final int toOffset;
        private final int width;
        private final int stride;

        PackRows(Slot rows, Slot packed) {
            this.from = rows.buffer();
            this.to = packed.buffer();
            this.fromOffset = rows.offset();
            this.toOffset = packed.offset();
            this.width = rows.elementCount(1);
            this.stride = rows.rowStride();
        }

        @Override
        public void run(long batch) {
            for (int r = 0; r < batch; r++) {
                to.put(toOffset + r * width, from, fromOffset + r * stride, width);
            }
        }
    }

    /** Frees what each kernel of a schedule owns (oneDNN primitives); null-safe. */
    private static void closeAll(Kernel[] schedule) {
        if (schedule != null) {
            for (Kernel kernel : schedule) {
                kernel.close();
            }
        }
    }

    private static Slot[] slotsOf(List<Value> values, Map<Value, Slot> slots) {
        Slot[] out = new Slot[values.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = slots.get(values.get(i));
            if (out[i] == null) {
                throw KilnException.of(ErrorCode.INVALID_GRAPH, "No buffer planned for %s", values.get(i));
            }
        }
        return out;
    }

    private void checkOpen() {
        if (closed) {
            throw KilnException.of(ErrorCode.INVALID_ARGUMENT, "The executor is closed");
        }
    }

    @Override
    public CompiledModel model() {
        return loaded.model();
    }

    @Override
    public long capacity() {
        return capacity;
    }

    @Override
    public void ensureCapacity(long batch) {
        checkOpen();
        if (batch > capacity) {
            build(Math.max(batch, Math.min(capacity * 2, batch * 2)));
        }
    }

    private void checkBinding(int index, java.nio.ByteBuffer buffer, long rows, int rowStride) {
        long width = graph.inputs().get(index).type().shape().elementCount(1);
        long needed = rowStride == 0 || rows == 0 ? width * rows * 4 : ((rows - 1) * rowStride + width) * 4;
        if (!buffer.isDirect() || buffer.capacity() < needed) {
            throw KilnException.of(ErrorCode.BAD_INPUT, "Input '%s' %s needs a direct buffer of %d bytes for %d rows, got %s of %d bytes",
                    graph.inputs().get(index).name(), graph.inputs().get(index).type(), needed, rows,
                    buffer.isDirect() ? "a direct buffer" : "a heap buffer", buffer.capacity());
        }
    }

    private void checkInputIndex(int index) {
        if (index < 0 || index >= inputSlots.length) {
            throw KilnException.of(ErrorCode.INVALID_ARGUMENT, "Input index %d is out of range; the model has %d inputs", index, inputSlots.length);
        }
    }

    private void checkOutputIndex(int index) {
        if (index < 0 || index >= outputSlots.length) {
            throw KilnException.of(ErrorCode.INVALID_ARGUMENT, "Output index %d is out of range; the model has %d outputs", index, outputSlots.length);
        }
    }

    @Override
    public void bindInput(int index, java.nio.ByteBuffer buffer) {
        checkOpen();
        checkInputIndex(index);
        checkBinding(index, buffer, capacity, 0);
        boundInputs[index] = buffer;
        boundStrides[index] = 0;
        // A position-0 view: JavaCPP's Pointer(Buffer) counts the position in the address.
        boundAddresses[index] = new org.bytedeco.javacpp.Pointer(buffer.duplicate().clear()).address();
    }

    /**
     * Binds input {@code index} to rows {@code rowStride} floats apart when the input is batch-first (each batch row
     * its own contiguous values) and the stride is at least a row's width; false otherwise, binding nothing. While it
     * is bound so, {@link #setInput} writes rows at the stride, and {@link #inputBuffer} is the bound buffer, its rows
     * that far apart.
     */
    @Override
    public boolean bindInputRows(int index, java.nio.ByteBuffer buffer, int rowStride) {
        checkOpen();
        checkInputIndex(index);
        dev.kiln.engine.tensor.Shape shape = graph.inputs().get(index).type().shape();
        // Batch rows, one per batch item: the batch axis is the bare symbol, and every other axis is concrete.
        boolean batchRows = shape.rank() >= 1 && shape.dim(0).isSymbolic() && shape.dim(0).factor() == 1
                && java.util.stream.IntStream.range(1, shape.rank()).allMatch(a -> shape.dim(a).isConcrete());
        if (!batchRows || rowStride < shape.elementCount(1)) {
            return false;
        }
        if (rowStride == shape.elementCount(1)) {
            bindInput(index, buffer);
            return true;
        }
        checkBinding(index, buffer, capacity, rowStride);
        boundInputs[index] = buffer;
        boundStrides[index] = rowStride;
        boundAddresses[index] = new org.bytedeco.javacpp.Pointer(buffer.duplicate().clear()).address();
        return true;
    }

    @Override
    public void unbindInputs() {
        checkOpen();
        java.util.Arrays.fill(boundInputs, null);
    }

    @Override
    public void setInput(int index, float[] source, int sourceOffset, int batch) {
        checkOpen();
        checkInputIndex(index);
        if (batch < 0 || sourceOffset < 0) {
            throw KilnException.of(ErrorCode.BAD_INPUT, "setInput needs a non-negative batch and offset, got batch %d offset %d", batch, sourceOffset);
        }
        ensureCapacity(batch);
        sync();
        Slot slot = inputSlots[index];
        int n = slot.elementCount(batch);
        if (source.length - sourceOffset < n) {
            throw KilnException.of(ErrorCode.BAD_INPUT, "Input '%s' %s at batch %d needs %d floats but %d were given",
                    graph.inputs().get(index).name(), slot.type(), batch, n, source.length - sourceOffset);
        }
        if (slot.strided()) {
            int width = slot.elementCount(1);
            for (int r = 0; r < batch; r++) {
                slot.buffer().put(slot.offset() + r * slot.rowStride(), source, sourceOffset + r * width, width);
            }
            return;
        }
        slot.buffer().put(slot.offset(), source, sourceOffset, n);
    }

    @Override
    public FloatBuffer inputBuffer(int index) {
        checkOpen();
        checkInputIndex(index);
        sync();
        return inputSlots[index].buffer();
    }

    @Override
    public int inputOffset(int index) {
        checkOpen();
        checkInputIndex(index);
        sync();
        return inputSlots[index].offset();
    }

    @Override
    public void run(long batch) {
        checkOpen();
        if (batch > capacity) {
            throw KilnException.of(ErrorCode.BAD_INPUT, "Batch %d exceeds the executor's capacity %d; set inputs (or ensureCapacity) first", batch, capacity);
        }
        sync();
        for (Kernel kernel : kernels) {
            kernel.run(batch);
        }
        lastBatch = batch;
    }

    @Override
    public int getOutput(int index, float[] target, int targetOffset) {
        checkOpen();
        checkOutputIndex(index);
        sync();
        Slot slot = outputSlots[index];
        int n = outputElements(index);
        if (targetOffset < 0 || target.length - targetOffset < n) {
            throw KilnException.of(ErrorCode.INVALID_ARGUMENT, "Output %d has %d floats; the target has room for %d at offset %d",
                    index, n, Math.max(0, target.length - targetOffset), targetOffset);
        }
        slot.buffer().get(slot.offset(), target, targetOffset, n);
        return n;
    }

    @Override
    public FloatBuffer outputBuffer(int index) {
        checkOpen();
        checkOutputIndex(index);
        sync();
        return outputSlots[index].buffer();
    }

    @Override
    public int outputOffset(int index) {
        checkOpen();
        checkOutputIndex(index);
        sync();
        return outputSlots[index].offset();
    }

    @Override
    public int outputElements(int index) {
        checkOpen();
        checkOutputIndex(index);
        sync();
        if (lastBatch < 0) {
            throw KilnException.of(ErrorCode.INVALID_ARGUMENT, "No run yet: call run(batch) before reading outputs");
        }
        return outputSlots[index].elementCount(lastBatch);
    }

    @Override
    public long arenaBytes() {
        return arena == null ? 0 : arena.capacity() * 4;
    }

    @Override
    public void close() {
        if (!closed) {
            closed = true;
            closeAll(kernels);
            kernels = null;
            arena.close();
            arena = null;
            arenaView = null;
            loaded.executorClosed();
        }
    }
}
