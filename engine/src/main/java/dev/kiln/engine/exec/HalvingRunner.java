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

    /** Rows per piece when the staging copies are spread over threads. */
    static final int COPY_PIECE_ROWS = 512;
    /** Below this many bytes a group's copies run on the calling thread. */
    static final long PARALLEL_COPY_BYTES = 1L << 20;

    /**
     * Scores several requests as one batch on the executor when they fit in one chunk: request {@code k}'s rows go to
     * the executor's staging buffers after those of the requests before it, one run, and each request's outputs are
     * copied back to its own arrays; with {@code copiers}, the copies are cut into pieces run on those threads (one
     * thread copies about 8 GB/s: a GPU takes host data faster than that). Returns false, with nothing delivered,
     * when the caller must run them one by one (with {@link #run}, which halves on out-of-memory and reports a bad
     * request's own error): the total does not fit, a request's arrays are too short, the device ran out of memory, or
     * the run of several requests failed. A single request's other failures are thrown.
     */
    public boolean runTogether(java.util.List<float[][]> inputs, int[] rows, java.util.List<float[][]> outputs,
                               java.util.concurrent.ExecutorService copiers) {
        long total = 0;
        long bytes = 0;
        for (int k = 0; k < rows.length; k++) {
            float[][] in = inputs.get(k);
            float[][] out = outputs.get(k);
            if (in == null || out == null || in.length != inputWidths.length || out.length != outputWidths.length || rows[k] < 0) {
                return false;
            }
            for (int i = 0; i < in.length; i++) {
                if (in[i] == null || in[i].length < (long) rows[k] * inputWidths[i]) {
                    return false;
                }
                bytes += 4L * rows[k] * inputWidths[i];
            }
            for (int o = 0; o < out.length; o++) {
                if (out[o] == null || out[o].length < (long) rows[k] * outputWidths[o]) {
                    return false;
                }
            }
            total += rows[k];
        }
        if (total > Integer.MAX_VALUE || (halvings > 0 && total > chunk)) {
            return false;
        }
        java.util.concurrent.ExecutorService pool = bytes >= PARALLEL_COPY_BYTES ? copiers : null;
        try {
            if (total > executor.capacity()) {
                executor.ensureCapacity(total);
                chunk = grownChunk();
            }
            runAll(copies(inputs, rows, inputWidths, executor::inputBuffer, executor::inputOffset, true), pool);
            executor.run(total);
        } catch (RuntimeException e) {
            if (e instanceof KilnException ke && ke.code() == ErrorCode.DEVICE_OUT_OF_MEMORY) {
                // Memory is short: later groups stay within what the executor holds (or half of what failed).
                halvings++;
                chunk = (int) Math.max(1, Math.min(executor.capacity() < total ? executor.capacity() : total / 2, Integer.MAX_VALUE));
                return false;
            }
            if (rows.length == 1) {
                throw e;  // one request's own failure: running it again alone would only repeat it
            }
            return false;
        }
        runAll(copies(outputs, rows, outputWidths, executor::outputBuffer, executor::outputOffset, false), pool);
        return true;
    }

    /** The chunk after the executor may have grown: its capacity, never below the chunk already reached. */
    private int grownChunk() {
        return (int) Math.max(1, Math.min(Math.max(chunk, executor.capacity()), Integer.MAX_VALUE));
    }

    /**
     * The copies between each request's arrays and the executor's buffers ({@code toBuffer}: arrays to buffers), request
     * {@code k}'s rows after those of the requests before it, in pieces of {@link #COPY_PIECE_ROWS} rows.
     */
    private static java.util.List<Runnable> copies(java.util.List<float[][]> arrays, int[] rows, int[] widths,
                                                   java.util.function.IntFunction<java.nio.FloatBuffer> buffers,
                                                   java.util.function.IntUnaryOperator offsets, boolean toBuffer) {
        java.util.List<Runnable> copies = new java.util.ArrayList<>();
        long offset = 0;
        for (int k = 0; k < rows.length; k++) {
            for (int i = 0; i < widths.length; i++) {
                int w = widths[i];
                java.nio.FloatBuffer buffer = buffers.apply(i);
                long base = offsets.applyAsInt(i) + offset * w;
                float[] array = arrays.get(k)[i];
                for (int from = 0; from < rows[k]; from += COPY_PIECE_ROWS) {
                    int at = Math.toIntExact(base + (long) from * w);
                    int start = from * w;
                    int length = Math.min(COPY_PIECE_ROWS, rows[k] - from) * w;
                    copies.add(toBuffer ? () -> buffer.duplicate().put(at, array, start, length) : () -> buffer.duplicate().get(at, array, start, length));
                }
            }
            offset += rows[k];
        }
        return copies;
    }

    /** Runs the copies, on {@code pool} when given; a copy's failure is rethrown here. */
    private static void runAll(java.util.List<Runnable> copies, java.util.concurrent.ExecutorService pool) {
        if (pool == null || copies.size() < 2) {
            copies.forEach(Runnable::run);
            return;
        }
        java.util.List<java.util.concurrent.Future<?>> futures = new java.util.ArrayList<>(copies.size());
        for (Runnable copy : copies) {
            futures.add(pool.submit(copy));
        }
        // Every copy is waited for, interrupts or not: the buffers must not be touched again while one still writes.
        RuntimeException failure = null;
        boolean interrupted = false;
        for (java.util.concurrent.Future<?> f : futures) {
            while (true) {
                try {
                    f.get();
                    break;
                } catch (InterruptedException e) {
                    interrupted = true;
                } catch (java.util.concurrent.ExecutionException e) {
                    failure = failure != null ? failure
                            : e.getCause() instanceof RuntimeException re ? re : new KilnException(ErrorCode.BACKEND_UNAVAILABLE, "Staging failed: " + e.getCause(), e);
                    break;
                }
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
        if (failure != null) {
            throw failure;
        }
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
            try {
                executor.ensureCapacity(rows);
            } catch (KilnException e) {
                if (e.code() != ErrorCode.DEVICE_OUT_OF_MEMORY) {
                    throw e;
                }
                halvings++;  // memory is short now: go on in chunks of what the executor already holds
            }
            chunk = grownChunk();
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
