package dev.kiln.engine.exec;

import java.util.concurrent.CompletableFuture;

/**
 * One caller's view of a shared device: an {@link Executor} whose {@link #run} sends the batch through a
 * {@link DeviceQueue} (to the one executor that owns the device) instead of computing itself. Inputs are staged in
 * host arrays (set, or read from bound buffers at run time), outputs come back into host arrays; the staging is this
 * object's and grows with {@link #ensureCapacity}. Cheap to create; closing it leaves the queue running.
 */
public final class QueuedExecutor extends HostStagedExecutor {
    private final DeviceQueue queue;

    public QueuedExecutor(DeviceQueue queue, CompiledModel model, int[] inputWidths, int[] outputWidths, long capacity) {
        super(model, inputWidths, outputWidths, capacity);
        this.queue = queue;
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
    public CompletableFuture<Void> submit(long batch) {
        checkBatch(batch);
        readBoundInputs((int) batch);
        lastBatch = -1;
        return queue.submit(inputs, (int) batch, outputs);
    }

    /** Waits for a {@link #submit}ted batch; its outputs are then readable. */
    public void finish(CompletableFuture<Void> submitted, long batch) {
        queue.await(submitted);
        lastBatch = batch;
    }

    @Override
    public void close() {
        closed = true;
    }
}
