package dev.kiln.engine.exec;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;

/**
 * One caller's view of a shared device: an {@link Executor} whose {@link #run} sends the batch through a
 * {@link DeviceQueue} (to the one executor that owns the device) instead of computing itself. Inputs are staged in
 * host arrays (set, or read from bound buffers at run time), outputs come back into host arrays; the staging is this
 * object's and grows with {@link #ensureCapacity}. Cheap to create; closing it leaves the queue running.
 */
public final class QueuedExecutor implements Executor {
    private final DeviceQueue queue;
    private final CompiledModel model;
    private final int[] inputWidths;
    private final int[] outputWidths;
    private final FloatBuffer[] bound;
    private float[][] inputs;
    private float[][] outputs;
    private long capacity;
    private long lastBatch = -1;
    private boolean closed;

    public QueuedExecutor(DeviceQueue queue, CompiledModel model, int[] inputWidths, int[] outputWidths, long capacity) {
        this.queue = queue;
        this.model = model;
        this.inputWidths = inputWidths.clone();
        this.outputWidths = outputWidths.clone();
        this.bound = new FloatBuffer[inputWidths.length];
        this.inputs = new float[inputWidths.length][];
        this.outputs = new float[outputWidths.length][];
        allocate(Math.max(1, capacity));
    }

    private void allocate(long rows) {
        for (int i = 0; i < inputs.length; i++) {
            inputs[i] = new float[Math.toIntExact(rows * inputWidths[i])];
        }
        for (int o = 0; o < outputs.length; o++) {
            outputs[o] = new float[Math.toIntExact(rows * outputWidths[o])];
        }
        capacity = rows;
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
        // The float view is made once here, not per batch.
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
            float[][] oldInputs = inputs;
            inputs = new float[inputWidths.length][];
            outputs = new float[outputWidths.length][];
            allocate(batch);
            for (int i = 0; i < inputs.length; i++) {
                System.arraycopy(oldInputs[i], 0, inputs[i], 0, oldInputs[i].length);
            }
        }
    }

    @Override
    public void run(long batch) {
        queue.await(submit(batch));
        lastBatch = batch;
    }

    /**
     * Queues the first {@code batch} rows and returns at once; {@link #finish} waits for them. How a task with
     * several GPUs ({@link SplitExecutor}) keeps them all busy.
     */
    public java.util.concurrent.CompletableFuture<Void> submit(long batch) {
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
        lastBatch = -1;
        return queue.submit(inputs, rows, outputs);
    }

    /** Waits for a {@link #submit}ted batch; its outputs are then readable. */
    public void finish(java.util.concurrent.CompletableFuture<Void> submitted, long batch) {
        queue.await(submitted);
        lastBatch = batch;
    }

    @Override
    public int getOutput(int index, float[] target, int targetOffset) {
        int n = outputElements(index);
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
        if (lastBatch < 0) {
            throw KilnException.of(ErrorCode.INVALID_ARGUMENT, "No run yet: call run(batch) before reading outputs");
        }
        return (int) lastBatch * outputWidths[index];
    }

    @Override
    public long arenaBytes() {
        long floats = 0;
        for (float[] a : inputs) {
            floats += a.length;
        }
        for (float[] a : outputs) {
            floats += a.length;
        }
        return floats * 4;
    }

    @Override
    public void close() {
        closed = true;
    }
}
