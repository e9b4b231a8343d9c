package dev.kiln.engine.exec;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.LinkedBlockingQueue;

/**
 * One device, many callers: the task threads of a Spark executor hand their batches to one worker thread that owns
 * the device's executor (through a {@link HalvingRunner}), so a GPU is fed by all of them, back to back, instead of
 * each task holding a model copy and a CUDA context of its own. Requests are served in arrival order; each caller
 * blocks for its own outputs. {@link #close()} finishes the requests already queued, stops the thread and closes the
 * executor; requests after close fail with a clear message. The thread is a daemon named after the device.
 */
public final class DeviceQueue implements AutoCloseable {
    private record Request(float[][] inputs, int rows, float[][] outputs, CompletableFuture<Void> done) { }

    private static final Request STOP = new Request(null, 0, null, null);

    private final String device;
    private final Executor executor;
    private final HalvingRunner runner;
    private final LinkedBlockingQueue<Request> queue = new LinkedBlockingQueue<>();
    private final Thread worker;
    private volatile boolean closed;

    /** Takes ownership of {@code executor}; widths as in {@link HalvingRunner}. */
    public DeviceQueue(String device, Executor executor, int[] inputWidths, int[] outputWidths) {
        this.device = device;
        this.executor = executor;
        this.runner = new HalvingRunner(executor, inputWidths, outputWidths);
        this.worker = new Thread(this::serve, "kiln-device-" + device);
        this.worker.setDaemon(true);
        this.worker.start();
    }

    private void serve() {
        try {
            while (true) {
                Request r = queue.take();
                if (r == STOP) {
                    return;
                }
                try {
                    runner.run(r.inputs(), r.rows(), r.outputs());
                    r.done().complete(null);
                } catch (RuntimeException | Error e) {
                    r.done().completeExceptionally(e);
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } finally {
            // Fail whatever is still queued (only possible after an interrupt) rather than leaving callers waiting.
            for (Request r; (r = queue.poll()) != null; ) {
                if (r != STOP) {
                    r.done().completeExceptionally(KilnException.of(ErrorCode.BACKEND_UNAVAILABLE, "Device queue %s stopped", device));
                }
            }
        }
    }

    /** Scores {@code rows} rows on the device; blocks until this request's outputs are in {@code outputs}. */
    public void run(float[][] inputs, int rows, float[][] outputs) {
        await(submit(inputs, rows, outputs));
    }

    /**
     * Queues {@code rows} rows and returns at once; the future completes when the outputs are in {@code outputs}
     * (the arrays must not be touched until then). A task with several GPUs submits a slice to each and awaits all.
     */
    public CompletableFuture<Void> submit(float[][] inputs, int rows, float[][] outputs) {
        CompletableFuture<Void> done = new CompletableFuture<>();
        synchronized (this) {
            if (closed) {
                throw KilnException.of(ErrorCode.BACKEND_UNAVAILABLE, "Device queue %s is closed", device);
            }
            queue.add(new Request(inputs, rows, outputs, done));
        }
        return done;
    }

    /** Waits for a {@link #submit}ted request, rethrowing its failure as it happened on the device thread. */
    public void await(CompletableFuture<Void> done) {
        try {
            done.get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new KilnException(ErrorCode.BACKEND_UNAVAILABLE, "Interrupted while waiting for device " + device, e);
        } catch (ExecutionException e) {
            if (e.getCause() instanceof RuntimeException re) {
                throw re;
            }
            throw new KilnException(ErrorCode.BACKEND_UNAVAILABLE, "Device " + device + " failed: " + e.getCause(), e.getCause());
        }
    }

    /** The rows per device call now (smaller after out-of-memory retries). */
    public int chunk() {
        return runner.chunk();
    }

    /** The worker thread (tests check that it ends). */
    Thread worker() {
        return worker;
    }

    @Override
    public void close() {
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
            queue.add(STOP);
        }
        // Wait for the worker even if interrupted: closing the executor under a running batch would free its memory
        // while the device still uses it.
        boolean interrupted = false;
        while (worker.isAlive()) {
            try {
                worker.join();
            } catch (InterruptedException e) {
                interrupted = true;
            }
        }
        executor.close();
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }
}
