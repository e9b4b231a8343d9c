package dev.kiln.engine.exec;

import java.util.List;
import java.util.concurrent.CompletableFuture;

/**
 * One caller on several devices (a Spark task given several GPUs): each batch is cut into contiguous slices, one
 * per device, submitted to all the devices' queues at once and awaited together, and the outputs are put back in row
 * order. Inputs are staged here (set, or read from bound buffers at run time) and copied into each part; closing
 * closes the parts, which leaves their queues running.
 */
public final class SplitExecutor extends HostStagedExecutor {
    private final List<QueuedExecutor> parts;
    private final CompletableFuture<?>[] pending;

    /** Takes ownership of {@code parts} (at least one, all of the same model). */
    public SplitExecutor(List<QueuedExecutor> parts, int[] inputWidths, int[] outputWidths, long capacity) {
        super(first(parts).model(), inputWidths, outputWidths, capacity);
        this.parts = List.copyOf(parts);
        this.pending = new CompletableFuture<?>[parts.size()];
    }

    private static QueuedExecutor first(List<QueuedExecutor> parts) {
        if (parts.isEmpty()) {
            throw new IllegalArgumentException("A split executor needs at least one part");
        }
        return parts.get(0);
    }

    /** The devices this executor spreads batches over. */
    public int parts() {
        return parts.size();
    }

    @Override
    public void run(long batch) {
        checkBatch(batch);
        int rows = (int) batch;
        readBoundInputs(rows);
        lastBatch = -1;
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
    public void close() {
        if (!closed) {
            closed = true;
            for (QueuedExecutor part : parts) {
                part.close();
            }
        }
    }
}
