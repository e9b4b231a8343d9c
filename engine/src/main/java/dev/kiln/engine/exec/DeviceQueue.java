package dev.kiln.engine.exec;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.LinkedBlockingDeque;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * One device, many callers: the task threads of a Spark executor hand their batches to the worker threads that own
 * the device's executors (each through a {@link HalvingRunner}), so a GPU is fed by all of them, back to back, instead
 * of each task holding a model copy and a CUDA context of its own. Requests are taken in arrival order; each caller
 * blocks for its own outputs. {@link #close()} finishes the requests already queued, stops the threads and closes the
 * executors; requests after close fail with a clear message. The threads are daemons named after the device.
 *
 * <p>Requests waiting in the queue when a worker becomes free are scored together, as one batch of up to
 * {@code maxRows} rows (by default {@value #DEFAULT_BATCH_BYTES} bytes of input, at least the executor's capacity):
 * a GPU fed 1,024-row requests by many task threads then runs fewer, larger batches, since each run has a fixed cost
 * (BENCHMARKS.md, GPU). A group that cannot run together (too large after an out-of-memory, a malformed request, any
 * failure) is run request by request, so that each caller gets its own result or error.
 *
 * <p>With two executors (two sets of staging buffers on one device) one worker copies its group into staging while
 * the other's group runs, so host copies and device work overlap.
 */
public final class DeviceQueue implements AutoCloseable {
    private record Request(float[][] inputs, int rows, float[][] outputs, CompletableFuture<Void> done) { }

    private static final Request STOP = new Request(null, 0, null, null);

    /** Input bytes the queued requests scored together may hold, by default. */
    public static final long DEFAULT_BATCH_BYTES = 32L << 20;

    private final String device;
    private final List<Executor> executors;
    private final List<HalvingRunner> runners = new ArrayList<>();
    private final List<Thread> workers = new ArrayList<>();
    private final LinkedBlockingDeque<Request> queue = new LinkedBlockingDeque<>();
    /** Held while a worker adds waiting requests to its group, so two workers never split what they drain. */
    private final Object grouping = new Object();
    private final long maxRows;
    /** Threads that copy a group's rows to and from an executor's staging buffers; null with one core. */
    private final ExecutorService copiers;
    private volatile boolean closed;

    /** Takes ownership of {@code executor}; widths as in {@link HalvingRunner}; groups of up to 32 MiB of input. */
    public DeviceQueue(String device, Executor executor, int[] inputWidths, int[] outputWidths) {
        this(device, List.of(executor), inputWidths, outputWidths);
    }

    /** Takes ownership of {@code executors} (of one model, on one device): one worker thread each. */
    public DeviceQueue(String device, List<Executor> executors, int[] inputWidths, int[] outputWidths) {
        this(device, executors, inputWidths, outputWidths, defaultMaxRows(executors, inputWidths));
    }

    /** As above, with at most {@code maxRows} rows scored together (requests larger than that run alone). */
    public DeviceQueue(String device, Executor executor, int[] inputWidths, int[] outputWidths, long maxRows) {
        this(device, List.of(executor), inputWidths, outputWidths, maxRows);
    }

    /** As above, with at most {@code maxRows} rows scored together (requests larger than that run alone). */
    public DeviceQueue(String device, List<Executor> executors, int[] inputWidths, int[] outputWidths, long maxRows) {
        this(device, executors, inputWidths, outputWidths, maxRows, Math.min(4, Runtime.getRuntime().availableProcessors() / 2));
    }

    /** As above, with {@code copyThreads} threads staging large groups (fewer than 2: the workers copy). */
    DeviceQueue(String device, List<Executor> executors, int[] inputWidths, int[] outputWidths, long maxRows, int copyThreads) {
        if (executors.isEmpty()) {
            throw KilnException.of(ErrorCode.INVALID_ARGUMENT, "Device queue %s needs at least one executor", device);
        }
        this.device = device;
        this.executors = List.copyOf(executors);
        this.maxRows = maxRows;
        AtomicInteger copyThread = new AtomicInteger();
        this.copiers = copyThreads < 2 ? null : Executors.newFixedThreadPool(copyThreads, task -> {
            Thread t = new Thread(task, "kiln-copy-" + device + "-" + copyThread.incrementAndGet());
            t.setDaemon(true);
            return t;
        });
        for (int i = 0; i < this.executors.size(); i++) {
            HalvingRunner runner = new HalvingRunner(this.executors.get(i), inputWidths, outputWidths);
            runners.add(runner);
            Thread worker = new Thread(() -> serve(runner), "kiln-device-" + device + (i == 0 ? "" : "#" + (i + 1)));
            worker.setDaemon(true);
            workers.add(worker);
        }
        workers.forEach(Thread::start);
    }

    private static long defaultMaxRows(List<Executor> executors, int[] inputWidths) {
        long rowBytes = Math.max(1, 4L * Arrays.stream(inputWidths).asLongStream().sum());
        return Math.max(executors.isEmpty() ? 1 : executors.get(0).capacity(), DEFAULT_BATCH_BYTES / rowBytes);
    }

    private void serve(HalvingRunner runner) {
        while (true) {
            Request r;
            try {
                r = queue.takeFirst();
            } catch (InterruptedException e) {
                // Nothing here interrupts a worker on purpose: close() stops them with STOP, after the requests queued
                // before it. A stray interrupt must not end a worker and strand the requests still to come.
                continue;
            }
            if (r == STOP) {
                return;
            }
            List<Request> group = new ArrayList<>();
            group.add(r);
            long rows = r.rows();
            synchronized (grouping) {
                // What does not fit (or STOP) goes back to the head, where the next worker takes it first.
                for (Request next; (next = queue.pollFirst()) != null; ) {
                    if (next == STOP || rows + next.rows() > maxRows) {
                        queue.addFirst(next);
                        break;
                    }
                    group.add(next);
                    rows += next.rows();
                }
            }
            try {
                if (runTogether(runner, group)) {
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
            } catch (RuntimeException | Error e) {
                // Never let a worker die with requests in hand: whatever is not complete yet fails with the cause.
                group.forEach(g -> g.done().completeExceptionally(e));
            } finally {
                Thread.interrupted();  // a stray interrupt is not carried into the next group
            }
        }
    }

    private boolean runTogether(HalvingRunner runner, List<Request> group) {
        List<float[][]> inputs = new ArrayList<>(group.size());
        List<float[][]> outputs = new ArrayList<>(group.size());
        int[] rows = new int[group.size()];
        for (int k = 0; k < rows.length; k++) {
            inputs.add(group.get(k).inputs());
            outputs.add(group.get(k).outputs());
            rows[k] = group.get(k).rows();
        }
        try {
            return runner.runTogether(inputs, rows, outputs, copiers);
        } catch (RuntimeException | Error e) {
            // A single request's own failure is that caller's (a group's run failing returns false instead).
            group.forEach(g -> g.done().completeExceptionally(e));
            return true;
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
        if (inputs == null || outputs == null || rows < 0 || Arrays.stream(inputs).anyMatch(a -> a == null)
                || Arrays.stream(outputs).anyMatch(a -> a == null)) {
            throw KilnException.of(ErrorCode.INVALID_ARGUMENT, "Device queue %s: a request needs input and output arrays (none null) and "
                    + "rows >= 0, got %s inputs, %s outputs, %d rows", device, inputs == null ? "null" : inputs.length + "",
                    outputs == null ? "null" : outputs.length + "", rows);
        }
        CompletableFuture<Void> done = new CompletableFuture<>();
        synchronized (this) {
            if (closed) {
                throw KilnException.of(ErrorCode.BACKEND_UNAVAILABLE, "Device queue %s is closed", device);
            }
            queue.addLast(new Request(inputs, rows, outputs, done));
        }
        return done;
    }

    /**
     * Waits for a {@link #submit}ted request, rethrowing its failure as it happened on the device thread. An interrupt
     * takes a request that is still queued out of the queue; one a worker already holds is waited for (its arrays are
     * in use until then), and then the interrupt is reported.
     */
    public void await(CompletableFuture<Void> done) {
        try {
            done.get();
        } catch (InterruptedException e) {
            boolean removed = queue.removeIf(r -> r.done() == done);
            if (!removed) {
                while (true) {
                    try {
                        done.get();
                        break;
                    } catch (InterruptedException again) {
                        // keep waiting: the worker still writes this request's outputs
                    } catch (ExecutionException failed) {
                        break;
                    }
                }
            }
            Thread.currentThread().interrupt();
            throw new KilnException(ErrorCode.BACKEND_UNAVAILABLE, "Interrupted while waiting for device " + device
                    + (removed ? " (the request was taken out of the queue)" : " (after the request in progress ended)"), e);
        } catch (ExecutionException e) {
            if (e.getCause() instanceof RuntimeException re) {
                throw re;
            }
            throw new KilnException(ErrorCode.BACKEND_UNAVAILABLE, "Device " + device + " failed: " + e.getCause(), e.getCause());
        }
    }

    /** The rows per device call now, the largest over the executors (smaller after out-of-memory retries). */
    public int chunk() {
        return runners.stream().mapToInt(HalvingRunner::chunk).max().orElse(0);
    }

    /** The worker threads (tests check that they end). */
    List<Thread> workers() {
        return workers;
    }

    /** Synchronized: a second close waits until the first has closed the executors. */
    @Override
    public synchronized void close() {
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
            for (int i = 0; i < workers.size(); i++) {
                queue.addLast(STOP);
            }
        }
        // Wait for the workers even if interrupted: closing an executor under a running batch would free its memory
        // while the device still uses it.
        boolean interrupted = false;
        for (Thread worker : workers) {
            while (worker.isAlive()) {
                try {
                    worker.join();
                } catch (InterruptedException e) {
                    interrupted = true;
                }
            }
        }
        if (copiers != null) {
            copiers.shutdown();
            while (true) {
                try {
                    if (copiers.awaitTermination(1, TimeUnit.MINUTES)) {
                        break;
                    }
                } catch (InterruptedException e) {
                    interrupted = true;
                }
            }
        }
        RuntimeException failure = null;
        for (Executor executor : executors) {
            try {
                executor.close();
            } catch (RuntimeException e) {
                failure = failure == null ? e : failure;
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
        if (failure != null) {
            throw failure;
        }
    }

}
