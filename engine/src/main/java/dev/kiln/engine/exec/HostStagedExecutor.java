package dev.kiln.engine.exec;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;

/**
 * What the executors that hand batches to device queues share ({@link QueuedExecutor}, {@link SplitExecutor}): inputs
 * staged in host arrays (set, or read from bound direct buffers at run time by {@link #readBoundInputs}), outputs
 * returned into host arrays, both grown with {@link #ensureCapacity}. Subclasses run the batch and set
 * {@link #lastBatch}.
 */
abstract class HostStagedExecutor implements Executor {
    private final CompiledModel model;
    protected final int[] inputWidths;
    protected final int[] outputWidths;
    private final FloatBuffer[] bound;
    protected float[][] inputs;
    protected float[][] outputs;
    private long capacity;
    protected long lastBatch = -1;
    protected boolean closed;

    HostStagedExecutor(CompiledModel model, int[] inputWidths, int[] outputWidths, long capacity) {
        this.model = model;
        this.inputWidths = inputWidths.clone();
        this.outputWidths = outputWidths.clone();
        this.bound = new FloatBuffer[inputWidths.length];
        this.inputs = new float[inputWidths.length][];
        this.outputs = new float[outputWidths.length][];
        allocate(Math.max(1, capacity));
    }

    /** Arrays for {@code rows} rows, keeping the inputs already set. */
    private void allocate(long rows) {
        for (int i = 0; i < inputs.length; i++) {
            float[] fresh = new float[Math.toIntExact(rows * inputWidths[i])];
            if (inputs[i] != null) {
                System.arraycopy(inputs[i], 0, fresh, 0, Math.min(inputs[i].length, fresh.length));
            }
            inputs[i] = fresh;
        }
        for (int o = 0; o < outputs.length; o++) {
            outputs[o] = new float[Math.toIntExact(rows * outputWidths[o])];
        }
        capacity = rows;
    }

    protected void checkOpen() {
        if (closed) {
            throw KilnException.of(ErrorCode.INVALID_ARGUMENT, "The executor is closed");
        }
    }

    protected void checkBatch(long batch) {
        checkOpen();
        if (batch > capacity) {
            throw KilnException.of(ErrorCode.BAD_INPUT, "Batch %d exceeds the executor's capacity %d; set inputs (or ensureCapacity) first", batch, capacity);
        }
    }

    /** Copies the first {@code rows} rows of every bound input into its array. */
    protected void readBoundInputs(int rows) {
        for (int i = 0; i < inputs.length; i++) {
            if (bound[i] != null) {
                int n = rows * inputWidths[i];
                if (bound[i].capacity() < n) {
                    throw KilnException.of(ErrorCode.BAD_INPUT, "Input %d is bound to %d bytes; %d rows need %d", i, bound[i].capacity() * 4, rows, n * 4);
                }
                bound[i].get(0, inputs[i], 0, n);
            }
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
            allocate(batch);
        }
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

    /** Heap bytes of the staging arrays. */
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
}
