package dev.kiln.engine.backend.cuda;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;
import dev.kiln.engine.exec.CompiledModel;
import dev.kiln.engine.exec.Executor;
import dev.kiln.engine.ir.Graph;
import dev.kiln.engine.ir.Value;
import dev.kiln.engine.plan.MemoryPlan;
import dev.kiln.engine.plan.MemoryPlanner;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.List;

/**
 * Runs a compiled graph on one GPU for one thread. Inputs and outputs are staged in page-locked host buffers sized for
 * the capacity (or read from bound direct buffers); a batch is cut into chunks that alternate between two lanes, each
 * with its own stream and device arena, so the copy of one chunk to the device overlaps the compute of the previous
 * one and the copy back of the one before. Everything is allocated when the capacity is set; {@link #run} only queues
 * copies, GEMMs and launches, then waits for both streams.
 */
final class CudaExecutor implements Executor {
    /** Lanes: two streams are enough to keep the copy engine and the SMs busy at once. */
    static final int LANES = 2;
    /**
     * A batch is cut into chunks of at least this many input bytes, at most {@link #MAX_CHUNKS} of them: only the first
     * chunk's copy in and the last one's compute and copy out are not hidden behind other work, but each chunk costs a
     * fixed host and launch overhead. Measured on an H200 (BENCHMARKS.md, GPU; seed MLP, 2 KiB rows), the best fixed
     * count at each batch was: 4,096 rows (8 MiB) one chunk with cuBLASLt, 16,384 rows four, 65,536 rows eight.
     * {@code -Dkiln.cuda.chunks=N} fixes the count instead (read when an executor is built).
     */
    static final long MIN_CHUNK_BYTES = 8L << 20;
    static final int MAX_CHUNKS = 8;
    /** Rows below which a batch runs as one chunk whatever the row size. */
    static final int MIN_CHUNK_ROWS = 256;

    private final CudaLoadedModel loaded;
    private final CudaApi api;
    private final Graph graph;
    private final long[] inputRowBytes;
    private final long[] outputRowBytes;
    private final ByteBuffer[] boundInputs;
    private ByteBuffer[] hostInputs = new ByteBuffer[0];
    private ByteBuffer[] hostOutputs = new ByteBuffer[0];
    private FloatBuffer[] inputViews;
    private FloatBuffer[] outputViews;
    private final List<Lane> lanes = new ArrayList<>();
    private long capacity;
    private long laneCapacity;
    private long lastBatch = -1;
    private boolean closed;

    /** One stream with its own arena, program and shape tables. */
    private record Lane(long stream, long arena, long meta, CudaLowering.Program program, long[] inputAddresses, long[] outputAddresses) { }

    CudaExecutor(CudaLoadedModel loaded, long capacity) {
        this.loaded = loaded;
        this.api = loaded.api();
        this.graph = loaded.model().graph();
        this.inputRowBytes = rowBytes(graph.inputs());
        this.outputRowBytes = rowBytes(graph.outputs());
        this.boundInputs = new ByteBuffer[graph.inputs().size()];
        build(Math.max(1, capacity));
    }

    private static long[] rowBytes(List<Value> values) {
        long[] out = new long[values.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = 4 * values.get(i).type().shape().elementCount(1);
        }
        return out;
    }

    /** The rows one lane holds for {@code capacity}: one chunk of a full batch, so that a full batch overlaps. */
    static long laneCapacity(long capacity, long rowBytes) {
        int chunks = chunks(capacity, rowBytes);
        return (capacity + chunks - 1) / chunks;
    }

    /** How many chunks a full batch of {@code capacity} rows of {@code rowBytes} input bytes is cut into. */
    static int chunks(long capacity, long rowBytes) {
        Integer fixed = Integer.getInteger("kiln.cuda.chunks");
        if (fixed != null && fixed < 1) {
            throw KilnException.of(ErrorCode.INVALID_ARGUMENT, "-Dkiln.cuda.chunks must be at least 1, got %d", fixed);
        }
        long bySize = Math.min(capacity / MIN_CHUNK_ROWS, Math.max(1, capacity * rowBytes) / MIN_CHUNK_BYTES);
        int chunks = fixed != null ? fixed : (int) Math.max(1, Math.min(MAX_CHUNKS, bySize));
        return (int) Math.max(1, Math.min(chunks, capacity));
    }

    /**
     * Allocates everything for {@code newCapacity} rows. When growing, the new lanes are allocated next to the old
     * ones if they fit; if not, the old lanes' device memory is freed first (device memory is what runs short) and the
     * new ones tried again; if they still do not fit, lanes are made again at the old size (or, if something else took
     * the memory meanwhile, at the largest size that fits) and the executor keeps its old capacity, so the caller can go
     * on in smaller batches ({@link dev.kiln.engine.exec.HalvingRunner}).
     */
    private void build(long newCapacity) {
        List<ByteBuffer> newInputs = new ArrayList<>();
        List<ByteBuffer> newOutputs = new ArrayList<>();
        long newLaneCapacity = laneCapacity(newCapacity, java.util.Arrays.stream(inputRowBytes).sum());
        List<Lane> grown;
        try {
            for (long bytes : inputRowBytes) {
                newInputs.add(api.mallocHost(Math.max(4, bytes * newCapacity)));
            }
            for (long bytes : outputRowBytes) {
                newOutputs.add(api.mallocHost(Math.max(4, bytes * newCapacity)));
            }
            try {
                grown = newLanes(newLaneCapacity);
            } catch (KilnException e) {
                if (e.code() != ErrorCode.DEVICE_OUT_OF_MEMORY || lanes.isEmpty()) {
                    throw e;
                }
                freeLanes();
                try {
                    grown = newLanes(newLaneCapacity);
                } catch (KilnException again) {
                    try {
                        restoreLanes(laneCapacity);
                    } catch (RuntimeException lost) {
                        again.addSuppressed(lost);  // run() tries again, smaller
                    }
                    throw again;
                }
            }
        } catch (RuntimeException e) {
            newInputs.forEach(api::freeHost);
            newOutputs.forEach(api::freeHost);
            throw e;
        }
        // Keep inputs already set; the new buffers and lanes become the executor's before the old ones are freed, so a
        // failure while freeing leaves nothing freed twice and nothing of the new leaked.
        for (int i = 0; i < hostInputs.length; i++) {
            ByteBuffer old = hostInputs[i].duplicate().clear();
            newInputs.get(i).duplicate().clear().put(old);
        }
        List<Lane> oldLanes = new ArrayList<>(lanes);
        ByteBuffer[] oldInputs = hostInputs;
        ByteBuffer[] oldOutputs = hostOutputs;
        lanes.clear();
        lanes.addAll(grown);
        hostInputs = newInputs.toArray(new ByteBuffer[0]);
        hostOutputs = newOutputs.toArray(new ByteBuffer[0]);
        inputViews = views(hostInputs);
        outputViews = views(hostOutputs);
        capacity = newCapacity;
        laneCapacity = newLaneCapacity;
        lastBatch = -1;
        try {
            freeLanes(oldLanes);
        } finally {
            freeHost(oldInputs, oldOutputs);
        }
    }

    /**
     * Makes the lanes again after they were freed, at {@code rows} rows each or, where that does not fit, the largest
     * half, quarter, ... that does (a batch then runs in more chunks); out of memory only if not even one row fits.
     */
    private void restoreLanes(long rows) {
        KilnException last = null;
        for (long r = Math.max(1, rows); ; r /= 2) {
            try {
                lanes.addAll(newLanes(r));
                laneCapacity = r;
                return;
            } catch (KilnException e) {
                if (e.code() != ErrorCode.DEVICE_OUT_OF_MEMORY) {
                    throw e;
                }
                last = e;
            }
            if (r == 1) {
                throw last;
            }
        }
    }

    /** Both lanes for {@code rows} rows each, or none (what was allocated is freed on failure). */
    private List<Lane> newLanes(long rows) {
        List<Lane> made = new ArrayList<>();
        try {
            MemoryPlan plan = MemoryPlanner.plan(graph, rows);
            for (int i = 0; i < LANES; i++) {
                made.add(newLane(plan));
            }
            return made;
        } catch (RuntimeException e) {
            for (Lane lane : made) {
                freeLane(lane);
            }
            throw e;
        }
    }

    private static FloatBuffer[] views(ByteBuffer[] buffers) {
        FloatBuffer[] out = new FloatBuffer[buffers.length];
        for (int i = 0; i < out.length; i++) {
            out[i] = buffers[i].duplicate().order(ByteOrder.LITTLE_ENDIAN).clear().asFloatBuffer();
        }
        return out;
    }

    private Lane newLane(MemoryPlan plan) {
        long stream = 0;
        long arena = 0;
        long meta = 0;
        try {
            stream = api.createStream();
            arena = api.malloc(Math.max(64, 4 * plan.arenaElements()));
            CudaLowering.Program program = CudaLowering.lower(graph, plan, arena, loaded.statics(), api);
            ByteBuffer table = program.metaBytes();
            meta = api.malloc(table.capacity());
            api.copyToDevice(meta, table, 0, table.capacity(), stream);
            api.synchronize(stream);
            program.bindMeta(meta);
            long[] in = new long[graph.inputs().size()];
            long[] out = new long[graph.outputs().size()];
            for (int i = 0; i < in.length; i++) {
                in[i] = arena + 4L * plan.offset(graph.inputs().get(i));
            }
            for (int i = 0; i < out.length; i++) {
                out[i] = outputAddress(plan, arena, graph.outputs().get(i));
            }
            return new Lane(stream, arena, meta, program, in, out);
        } catch (RuntimeException e) {
            if (meta != 0) {
                api.free(meta);
            }
            if (arena != 0) {
                api.free(arena);
            }
            if (stream != 0) {
                api.destroyStream(stream);
            }
            throw e;
        }
    }

    private long outputAddress(MemoryPlan plan, long arena, Value output) {
        Long s = loaded.statics().get(output);
        if (s == null && plan.staticAliases().containsKey(output)) {
            s = loaded.statics().get(plan.staticAliases().get(output));
        }
        return s != null ? s : arena + 4L * plan.offset(output);
    }

    /** Frees a lane's meta table, arena and stream, all three even if one fails (the first failure is rethrown). */
    private void freeLane(Lane lane) {
        RuntimeException failure = null;
        for (Runnable step : new Runnable[] {() -> api.free(lane.meta()), () -> api.free(lane.arena()), () -> api.destroyStream(lane.stream())}) {
            try {
                step.run();
            } catch (RuntimeException e) {
                failure = failure == null ? e : failure;
            }
        }
        if (failure != null) {
            throw failure;
        }
    }

    private void freeLanes() {
        freeLanes(lanes);
    }

    /** Frees every lane of {@code list}, each taken off it first (never freed twice); the first failure is rethrown. */
    private void freeLanes(List<Lane> list) {
        RuntimeException failure = null;
        while (!list.isEmpty()) {
            Lane lane = list.remove(list.size() - 1);
            try {
                api.synchronize(lane.stream());
            } catch (RuntimeException e) {
                failure = failure == null ? e : failure;
            }
            try {
                freeLane(lane);
            } catch (RuntimeException e) {
                failure = failure == null ? e : failure;
            }
        }
        if (failure != null) {
            throw failure;
        }
    }

    /** Frees the staging buffers, each once, all of them even if one fails (the first failure is rethrown). */
    private void freeHostBuffers() {
        ByteBuffer[] inputs = hostInputs;
        ByteBuffer[] outputs = hostOutputs;
        hostInputs = new ByteBuffer[0];
        hostOutputs = new ByteBuffer[0];
        freeHost(inputs, outputs);
    }

    private void freeHost(ByteBuffer[]... groups) {
        RuntimeException failure = null;
        for (ByteBuffer[] buffers : groups) {
            for (ByteBuffer b : buffers) {
                try {
                    api.freeHost(b);
                } catch (RuntimeException e) {
                    failure = failure == null ? e : failure;
                }
            }
        }
        if (failure != null) {
            throw failure;
        }
    }

    private void freeAll() {
        try {
            freeLanes();
        } finally {
            freeHostBuffers();
        }
    }

    private void checkOpen() {
        if (closed) {
            throw KilnException.of(ErrorCode.INVALID_ARGUMENT, "The executor is closed");
        }
    }

    private void checkIndex(int index, int count, String what) {
        if (index < 0 || index >= count) {
            throw KilnException.of(ErrorCode.INVALID_ARGUMENT, "%s index %d is out of range; the model has %d %ss", what, index, count, what.toLowerCase());
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
            long target = Math.max(batch, Math.min(capacity * 2, batch * 2));
            try {
                build(target);
            } catch (KilnException e) {
                if (e.code() != ErrorCode.DEVICE_OUT_OF_MEMORY || target == batch) {
                    throw e;
                }
                build(batch);  // the headroom did not fit; the batch itself may
            }
        }
    }

    @Override
    public void setInput(int index, float[] source, int sourceOffset, int batch) {
        checkOpen();
        checkIndex(index, inputRowBytes.length, "Input");
        if (batch < 0 || sourceOffset < 0) {
            throw KilnException.of(ErrorCode.BAD_INPUT, "setInput needs a non-negative batch and offset, got batch %d offset %d", batch, sourceOffset);
        }
        ensureCapacity(batch);
        int n = (int) (inputRowBytes[index] / 4 * batch);
        if (source.length - sourceOffset < n) {
            throw KilnException.of(ErrorCode.BAD_INPUT, "Input '%s' %s at batch %d needs %d floats but %d were given",
                    graph.inputs().get(index).name(), graph.inputs().get(index).type(), batch, n, source.length - sourceOffset);
        }
        inputViews[index].put(0, source, sourceOffset, n);
    }

    @Override
    public FloatBuffer inputBuffer(int index) {
        checkOpen();
        checkIndex(index, inputRowBytes.length, "Input");
        return inputViews[index];
    }

    @Override
    public int inputOffset(int index) {
        checkOpen();
        checkIndex(index, inputRowBytes.length, "Input");
        return 0;
    }

    @Override
    public void bindInput(int index, ByteBuffer buffer) {
        checkOpen();
        checkIndex(index, inputRowBytes.length, "Input");
        long needed = inputRowBytes[index] * capacity;
        if (!buffer.isDirect() || buffer.capacity() < needed) {
            throw KilnException.of(ErrorCode.BAD_INPUT, "Input '%s' %s needs a direct buffer of %d bytes for %d rows, got %s of %d bytes",
                    graph.inputs().get(index).name(), graph.inputs().get(index).type(), needed, capacity,
                    buffer.isDirect() ? "a direct buffer" : "a heap buffer", buffer.capacity());
        }
        boundInputs[index] = buffer;
    }

    @Override
    public void unbindInputs() {
        checkOpen();
        java.util.Arrays.fill(boundInputs, null);
    }

    @Override
    public void run(long batch) {
        checkOpen();
        if (batch > capacity) {
            throw KilnException.of(ErrorCode.BAD_INPUT, "Batch %d exceeds the executor's capacity %d; set inputs (or ensureCapacity) first", batch, capacity);
        }
        if (lanes.isEmpty()) {
            // A failed growth freed them and something else took the memory: make them again, as large as fits.
            restoreLanes(laneCapacity);
        }
        for (int i = 0; i < boundInputs.length; i++) {
            // Capacity may have grown since the buffer was bound: never copy past its end.
            if (boundInputs[i] != null && boundInputs[i].capacity() < batch * inputRowBytes[i]) {
                throw KilnException.of(ErrorCode.BAD_INPUT, "Input '%s' is bound to %d bytes; %d rows need %d", graph.inputs().get(i).name(),
                        boundInputs[i].capacity(), batch, batch * inputRowBytes[i]);
            }
        }
        int chunk = 0;
        for (long start = 0; start < batch; start += laneCapacity, chunk++) {
            Lane lane = lanes.get(chunk % LANES);
            long rows = Math.min(laneCapacity, batch - start);
            long stream = lane.stream();
            for (int i = 0; i < inputRowBytes.length; i++) {
                ByteBuffer source = boundInputs[i] != null ? boundInputs[i] : hostInputs[i];
                api.copyToDevice(lane.inputAddresses()[i], source, start * inputRowBytes[i], rows * inputRowBytes[i], stream);
            }
            for (Step step : lane.program().steps) {
                step.run(rows, stream);
            }
            for (int o = 0; o < outputRowBytes.length; o++) {
                api.copyToHost(hostOutputs[o], start * outputRowBytes[o], lane.outputAddresses()[o], rows * outputRowBytes[o], stream);
            }
        }
        for (Lane lane : lanes) {
            api.synchronize(lane.stream());
        }
        lastBatch = batch;
    }

    @Override
    public int getOutput(int index, float[] target, int targetOffset) {
        int n = outputElements(index);
        if (targetOffset < 0 || target.length - targetOffset < n) {
            throw KilnException.of(ErrorCode.INVALID_ARGUMENT, "Output %d has %d floats; the target has room for %d at offset %d",
                    index, n, Math.max(0, target.length - targetOffset), targetOffset);
        }
        outputViews[index].get(0, target, targetOffset, n);
        return n;
    }

    @Override
    public FloatBuffer outputBuffer(int index) {
        checkOpen();
        checkIndex(index, outputRowBytes.length, "Output");
        return outputViews[index];
    }

    @Override
    public int outputOffset(int index) {
        checkOpen();
        checkIndex(index, outputRowBytes.length, "Output");
        return 0;
    }

    @Override
    public int outputElements(int index) {
        checkOpen();
        checkIndex(index, outputRowBytes.length, "Output");
        if (lastBatch < 0) {
            throw KilnException.of(ErrorCode.INVALID_ARGUMENT, "No run yet: call run(batch) before reading outputs");
        }
        return (int) (outputRowBytes[index] / 4 * lastBatch);
    }

    /** Page-locked host bytes of the staging buffers (device memory is not counted here). */
    @Override
    public long arenaBytes() {
        long total = 0;
        for (ByteBuffer b : hostInputs) {
            total += b.capacity();
        }
        for (ByteBuffer b : hostOutputs) {
            total += b.capacity();
        }
        return total;
    }

    @Override
    public void close() {
        if (!closed) {
            closed = true;
            try {
                freeAll();
            } finally {
                // Even when the device failed (a sticky CUDA error), the model must learn this executor is gone.
                loaded.executorClosed();
            }
        }
    }
}
