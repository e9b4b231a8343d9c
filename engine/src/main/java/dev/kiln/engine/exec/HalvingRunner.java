package dev.kiln.engine.exec;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;

/**
 * Runs any number of rows through an executor in chunks, from host arrays to host arrays, and halves the chunk when
 * the device runs out of memory ({@link ErrorCode#DEVICE_OUT_OF_MEMORY}) instead of failing the task: the failed
 * chunk is retried at half the size, and the smaller size is kept for the chunks after it (memory that was short once
 * stays short). Until memory has been short once, the executor grows to the largest request. Only a single row that
 * does not fit fails, with the sizes tried in the message. Not thread-safe: one runner per executor; {@link DeviceQueue}
 * shares one between threads.
 */
public final class HalvingRunner {
    private final Executor executor;
    private final int[] inputWidths;
    private final int[] outputWidths;
    private int chunk;
    private int halvings;

    /**
     * {@code inputWidths} and {@code outputWidths}: floats per row of each model input and output, in order;
     * the first chunk is the executor's capacity.
     */
    public HalvingRunner(Executor executor, int[] inputWidths, int[] outputWidths) {
        this.executor = executor;
        this.inputWidths = inputWidths.clone();
        this.outputWidths = outputWidths.clone();
        this.chunk = (int) Math.max(1, executor.capacity());
    }

    /** The rows per chunk now (smaller after out-of-memory retries). */
    public int chunk() {
        return chunk;
    }

    /** How many times the chunk was halved. */
    public int halvings() {
        return halvings;
    }

    /**
     * Scores {@code rows} rows: {@code inputs[i]} holds {@code rows * inputWidths[i]} floats, the outputs go to
     * {@code outputs[o]} ({@code rows * outputWidths[o]} floats), row order kept.
     */
    public void run(float[][] inputs, int rows, float[][] outputs) {
        if (inputs.length != inputWidths.length || outputs.length != outputWidths.length) {
            throw KilnException.of(ErrorCode.INVALID_ARGUMENT, "The model has %d inputs and %d outputs but %d and %d arrays were given",
                    inputWidths.length, outputWidths.length, inputs.length, outputs.length);
        }
        if (halvings == 0 && rows > chunk) {
            // Memory has never been short: grow to the largest request seen (the first lease's capacity may be small).
            executor.ensureCapacity(rows);
            chunk = (int) Math.max(chunk, executor.capacity());
        }
        int done = 0;
        StringBuilder tried = null;
        while (done < rows) {
            int n = Math.min(chunk, rows - done);
            try {
                for (int i = 0; i < inputs.length; i++) {
                    executor.setInput(i, inputs[i], done * inputWidths[i], n);
                }
                executor.run(n);
            } catch (KilnException e) {
                if (e.code() != ErrorCode.DEVICE_OUT_OF_MEMORY) {
                    throw e;
                }
                tried = (tried == null ? new StringBuilder() : tried.append(", ")).append(n);
                if (n == 1) {
                    throw new KilnException(ErrorCode.DEVICE_OUT_OF_MEMORY, "One row does not fit in device memory (batches of " + tried
                            + " rows tried): " + e.getMessage(), e);
                }
                chunk = n / 2;
                halvings++;
                continue;
            }
            for (int o = 0; o < outputs.length; o++) {
                executor.getOutput(o, outputs[o], done * outputWidths[o]);
            }
            done += n;
        }
    }
}
