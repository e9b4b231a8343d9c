package dev.kiln.engine.exec;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.List;
import java.util.concurrent.CompletableFuture;

/**
 * One caller on several devices (a Spark task given several GPUs): each batch is cut into contiguous slices, one
 * per device, submitted to all the devices' queues at once and awaited together, and the outputs are put back in row
 * order. Inputs are staged here (set, or read from bound buffers at run time) and copied into each part; closing
 * closes the parts, which leaves their queues running.
 */
public final class SplitExecutor implements Executor {
    private final List<QueuedExecutor> parts;
    private final CompiledModel model;
    private final int[] inputWidths;
    private final int[] outputWidths;
    private final FloatBuffer[] bound;
    private final CompletableFuture<?>[] pending;
    private float[][] inputs;
    private float[][] outputs;
    private long capacity;
    private long lastBatch = -1;
    private boolean closed;

    /** Takes ownership of {@code parts} (at least one, all of the same model). */
    public SplitExecutor(List<QueuedExecutor> parts, int[] inputWidths, int[] outputWidths, long capacity) {
        if (parts.isEmpty()) {
            throw new IllegalArgumentException("A split executor needs at least one part");
        }
        this.parts = List.copyOf(parts);
        this.model = parts.get(0).model();
        this.inputWidths = inputWidths.clone();
        this.outputWidths = outputWidths.clone();
        this.bound = new FloatBuffer[inputWidths.length];
        this.pending = new CompletableFuture<?>[parts.size()];
        this.inputs = new float[inputWidths.length][];
        this.outputs = new float[outputWidths.length][];
        allocate(Math.max(1, capacity));
    }

    private void allocate(long rows) {
        float[][] old = inputs;
        for (int i = 0; i < inputs.length; i++) {
            float[] fresh = new float[Math.toIntExact(rows * inputWidths[i])];
            if (old[i] != null) {
                System.arraycopy(old[i], 0, fresh, 0, Math.min(old[i].length, fresh.length));
            }
            inputs[i] = fresh;
        }
        for (int o = 0; o < outputs.length; o++) {
            outputs[o] = new float[Math.toIntExact(rows * outputWidths[o])];
        }
        capacity = rows;
    }

    /** The devices this executor spreads batches over. */
    public int parts() {
        return parts.size();
    }

    private void checkOpen() {
        if (closed) {
            throw KilnException.of(ErrorCode.INVALID_ARGUMENT, "The executor is closed");
        }
    }

    @Override
    public CompiledModel model() {
        return model;
    }

    @Override
    public long capacity() {
        return capacity;
    }

    @Override
    public void setInput(int index, float[] source, int sourceOffset, int batch) {
        checkOpen();
        ensureCapacity(batch);
        int n = batch * inputWidths[index];
        if (sourceOffset < 0 || source.length - sourceOffset < n) {
            throw KilnException.of(ErrorCode.BAD_INPUT, "Input %d at batch %d needs %d floats but %d were given", index, batch, n,
                    Math.max(0, source.length - sourceOffset));
        }
        System.arraycopy(source, sourceOffset, inputs[index], 0, n);
        bound[index] = null;
    }

    @Override
    public FloatBuffer inputBuffer(int index) {
        checkOpen();
        return FloatBuffer.wrap(inputs[index]);
    }

    @Override
    public int inputOffset(int index) {
        return 0;
    }

    @Override
    public void bindInput(int index, ByteBuffer buffer) {
        checkOpen();
        if (!buffer.isDirect()) {
            throw KilnException.of(ErrorCode.BAD_INPUT, "Input %d must be bound to a direct buffer", index);
        }
        bound[index] = buffer.duplicate().order(ByteOrder.LITTLE_ENDIAN).clear().asFloatBuffer();
    }

    @Override
    public void unbindInputs() {
        java.util.Arrays.fill(bound, null);
    }

    @Override
    public void ensureCapacity(long batch) {
        checkOpen();
        if (batch > capacity) {
            allocate(batch);
        }
    }

    @Override
    public void run(long batch) {
        checkOpen();
        if (batch > capacity) {
            throw KilnException.of(ErrorCode.BAD_INPUT, "Batch %d exceeds the executor's capacity %d; set inputs (or ensureCapacity) first", batch, capacity);
        }
        int rows = (int) batch;
        for (int i = 0; i < inputs.length; i++) {
            if (bound[i] != null) {
                int n = rows * inputWidths[i];
                if (bound[i].capacity() < n) {
                    throw KilnException.of(ErrorCode.BAD_INPUT, "Input %d is bound to %d bytes; %d rows need %d", i, bound[i].capacity() * 4, rows, n * 4);
                }
                bound[i].get(0, inputs[i], 0, n);
            }
        }
        int k = parts.size();
        RuntimeException failure = null;
        try {
            for (int j = 0; j < k; j++) {
                int start = slice(rows, k, j);
                int count = slice(rows, k, j + 1) - start;
                if (count == 0) {
                    continue;
                }
                QueuedExecutor part = parts.get(j);
                for (int i = 0; i < inputs.length; i++) {
                    part.setInput(i, inputs[i], start * inputWidths[i], count);
                }
                pending[j] = part.submit(count);
            }
        } catch (RuntimeException e) {
            failure = e;
        }
        // Wait for every submitted part, even after a failure: their arrays must not be reused while a device writes them.
        for (int j = 0; j < k; j++) {
            if (pending[j] == null) {
                continue;
            }
            int start = slice(rows, k, j);
            int count = slice(rows, k, j + 1) - start;
            try {
                @SuppressWarnings("unchecked")
                CompletableFuture<Void> submitted = (CompletableFuture<Void>) pending[j];
                parts.get(j).finish(submitted, count);
                for (int o = 0; o < outputs.length; o++) {
                    parts.get(j).getOutput(o, outputs[o], start * outputWidths[o]);
                }
            } catch (RuntimeException e) {
                failure = failure == null ? e : failure;
            } finally {
                pending[j] = null;
            }
        }
        if (failure != null) {
            throw failure;
        }
        lastBatch = batch;
    }

    /** Where slice {@code j} of {@code k} starts in {@code rows} rows (the first {@code rows % k} slices get one more). */
    static int slice(int rows, int k, int j) {
        return j * (rows / k) + Math.min(j, rows % k);
    }

    @Override
    public int getOutput(int index, float[] target, int targetOffset) {
        int n = outputElements(index);
        if (targetOffset < 0 || target.length - targetOffset < n) {
            throw KilnException.of(ErrorCode.INVALID_ARGUMENT, "Output %d has %d floats; the target has room for %d at offset %d",
                    index, n, Math.max(0, target.length - targetOffset), targetOffset);
        }
        System.arraycopy(outputs[index], 0, target, targetOffset, n);
        return n;
    }

    @Override
    public FloatBuffer outputBuffer(int index) {
        checkOpen();
        return FloatBuffer.wrap(outputs[index]);
    }

    @Override
    public int outputOffset(int index) {
        return 0;
    }

    @Override
    public int outputElements(int index) {
        checkOpen();
        if (lastBatch < 0) {
            throw KilnException.of(ErrorCode.INVALID_ARGUMENT, "No run yet: call run(batch) before reading outputs");
        }
        return (int) (lastBatch * outputWidths[index]);
    }

    @Override
    public long arenaBytes() {
        return 0;
    }

    @Override
    public void close() {
        if (!closed) {
            closed = true;
            for (QueuedExecutor part : parts) {
                part.close();
            }
        }
    }
}
