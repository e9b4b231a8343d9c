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
 *
 * <p>Requests waiting in the queue when the device becomes free are scored together, as one batch of up to
 * {@code maxRows} rows (by default {@value #DEFAULT_BATCH_BYTES} bytes of input, at least the executor's capacity):
 * a GPU fed 1,024-row requests by many task threads then runs fewer, larger batches, since each run has a fixed cost
 * (BENCHMARKS.md, GPU). A group that cannot run together (too large after an out-of-memory, a malformed request, any
 * failure) is run request by request, so that each caller gets its own result or error.
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

    /** Input bytes the queued requests scored together may hold, by default. */
    public static final long DEFAULT_BATCH_BYTES = 32L << 20;

    private final long maxRows;
    /** Threads that copy a group's rows to and from the device executor's staging buffers; null with one core. */
    private final java.util.concurrent.ExecutorService copiers;

    /** Takes ownership of {@code executor}; widths as in {@link HalvingRunner}; groups of up to 32 MiB of input. */
    public DeviceQueue(String device, Executor executor, int[] inputWidths, int[] outputWidths) {
        this(device, executor, inputWidths, outputWidths,
                Math.max(executor.capacity(), DEFAULT_BATCH_BYTES / Math.max(1, 4L * java.util.Arrays.stream(inputWidths).asLongStream().sum())));
    }

    /** As above, with at most {@code maxRows} rows scored together (requests larger than that run alone). */
    public DeviceQueue(String device, Executor executor, int[] inputWidths, int[] outputWidths, long maxRows) {
        this(device, executor, inputWidths, outputWidths, maxRows, Math.min(4, Runtime.getRuntime().availableProcessors() / 2));
    }

    /** As above, with {@code copyThreads} threads staging large groups (fewer than 2: the queue's own thread copies). */
    DeviceQueue(String device, Executor executor, int[] inputWidths, int[] outputWidths, long maxRows, int copyThreads) {
        this.maxRows = maxRows;
        this.device = device;
        java.util.concurrent.atomic.AtomicInteger copyThread = new java.util.concurrent.atomic.AtomicInteger();
        this.copiers = copyThreads < 2 ? null : java.util.concurrent.Executors.newFixedThreadPool(copyThreads, task -> {
            Thread t = new Thread(task, "kiln-copy-" + device + "-" + copyThread.incrementAndGet());
            t.setDaemon(true);
            return t;
        });
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
                java.util.List<Request> group = new java.util.ArrayList<>();
                group.add(r);
                long rows = r.rows();
                // One consumer: what peek sees, poll takes. STOP stays queued behind the group.
                for (Request next; (next = queue.peek()) != null && next != STOP && rows + next.rows() <= maxRows; ) {
                    group.add(queue.poll());
                    rows += next.rows();
                }
                if (runTogether(group)) {
                    group.forEach(g -> g.done().complete(null));
                    continue;
                }
                for (Request g : group) {
                    try {
                        runner.run(g.inputs(), g.rows(), g.outputs());
                        g.done().complete(null);
                    } catch (RuntimeException | Error e) {
                        g.done().completeExceptionally(e);
                    }
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

    private boolean runTogether(java.util.List<Request> group) {
        java.util.List<float[][]> inputs = new java.util.ArrayList<>(group.size());
        java.util.List<float[][]> outputs = new java.util.ArrayList<>(group.size());
        int[] rows = new int[group.size()];
        for (int k = 0; k < rows.length; k++) {
            inputs.add(group.get(k).inputs());
            outputs.add(group.get(k).outputs());
            rows[k] = group.get(k).rows();
        }
        return runner.runTogether(inputs, rows, outputs, copiers);
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
        if (copiers != null) {
            copiers.shutdown();
            while (true) {
                try {
                    if (copiers.awaitTermination(1, java.util.concurrent.TimeUnit.MINUTES)) {
                        break;
                    }
                } catch (InterruptedException e) {
                    interrupted = true;
                }
            }
        }
        executor.close();
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }
}
