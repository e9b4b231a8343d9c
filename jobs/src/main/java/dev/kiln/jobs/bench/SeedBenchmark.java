package dev.kiln.jobs.bench;

import dev.kiln.engine.Kiln;
import dev.kiln.engine.backend.cpu.CpuBackend;
import dev.kiln.engine.exec.CompiledModel;
import dev.kiln.engine.exec.Executor;
import dev.kiln.engine.ir.Signature;
import dev.kiln.engine.nn.Block;
import dev.kiln.engine.tensor.Tensor;
import dev.kiln.engine.tensor.TensorData;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CyclicBarrier;
import java.util.function.IntFunction;

/**
 * The seed's benchmark: the same model called eagerly and compiled, {@code calls} times per repetition at batch 1
 * (microseconds per call) and at larger batches (rows per second), with warm-up, repetitions interleaved between
 * the modes, and medians with min-max. With T threads, T workers each run their own eager calls or their own
 * executor, every worker's BLAS single-threaded, so T is the number of cores in use.
 */
public final class SeedBenchmark {
    /** One measured configuration; times are medians (min, max) over repetitions. */
    public record Result(String mode, int batch, int threads, double usPerCall, double usPerCallMin, double usPerCallMax,
                         double rowsPerSecond, double rowsPerSecondMin, double rowsPerSecondMax, int calls, int repetitions) { }

    private final Block block;
    private final Signature signature;
    private final int calls;
    private final int repetitions;
    private final PrintStream log;
    private final boolean eagerMode;
    private final int rows;

    public SeedBenchmark(Block block, Signature signature, int calls, int repetitions, PrintStream log) {
        this(block, signature, calls, 262_144, repetitions, log, true);
    }

    /**
     * @param calls     calls per repetition at batch 1
     * @param rows      rows per repetition at larger batches (at least 5 calls)
     * @param eagerMode false times only the compiled model (for runs where eager would take too long)
     */
    public SeedBenchmark(Block block, Signature signature, int calls, int rows, int repetitions, PrintStream log, boolean eagerMode) {
        this.block = block;
        this.signature = signature;
        this.calls = calls;
        this.rows = rows;
        this.repetitions = repetitions;
        this.log = log;
        this.eagerMode = eagerMode;
    }

    /** Calls per repetition: {@code calls} at batch 1; about {@code rows} rows (at least 5 calls) at larger batches. */
    int callsFor(int batch) {
        return batch == 1 ? calls : Math.max(5, rows / batch);
    }

    public List<Result> run(List<Integer> batches, List<Integer> threadCounts) throws Exception {
        dev.kiln.engine.tensor.Shape inputShape = signature.inputs().get(0).shape();
        long features = inputShape.elementCount(1);
        List<Result> results = new ArrayList<>();
        try (CompiledModel model = Kiln.compile(block, signature)) {
            for (int threads : threadCounts) {
                CpuBackend.setBlasThreads(1);
                for (int batch : batches) {
                    int n = callsFor(batch);
                    float[][] inputs = new float[threads][];
                    for (int t = 0; t < threads; t++) {
                        inputs[t] = randomInput(batch * (int) features, 42 + t);
                    }
                    IntFunction<Worker> eager = t -> eagerWorker(inputs[t], inputShape.resolve(batch));
                    IntFunction<Worker> compiled = t -> compiledWorker(model, inputs[t], batch);
                    double[][] eagerTimes = new double[repetitions][];
                    double[][] compiledTimes = new double[repetitions][];
                    // Warm-up (JIT, first-touch of buffers), then interleaved repetitions.
                    if (eagerMode) {
                        time(eager, threads, Math.max(3, n / 2));
                    }
                    // Enough calls for C2 to compile the Vector API epilogue (interpreted, it allocates and is slow).
                    time(compiled, threads, Math.max(20_000 / batch, 2 * n));
                    for (int r = 0; r < repetitions; r++) {
                        if (eagerMode) {
                            eagerTimes[r] = new double[] {time(eager, threads, n)};
                        }
                        compiledTimes[r] = new double[] {time(compiled, threads, n)};
                    }
                    Result c = summarize("compiled", batch, threads, n, compiledTimes);
                    if (eagerMode) {
                        Result e = summarize("eager", batch, threads, n, eagerTimes);
                        results.add(e);
                        log.printf("batch %5d  threads %d  eager %10.1f us/call %12.0f rows/s   compiled %10.1f us/call (%.1f-%.1f) %12.0f rows/s   speed-up %.1fx%n",
                                batch, threads, e.usPerCall(), e.rowsPerSecond(), c.usPerCall(), c.usPerCallMin(), c.usPerCallMax(),
                                c.rowsPerSecond(), e.usPerCall() / c.usPerCall());
                    } else {
                        log.printf("batch %5d  threads %d  compiled %10.1f us/call (%.1f-%.1f) %12.0f rows/s%n",
                                batch, threads, c.usPerCall(), c.usPerCallMin(), c.usPerCallMax(), c.rowsPerSecond());
                    }
                    results.add(c);
                }
            }
        }
        return results;
    }

    private Result summarize(String mode, int batch, int threads, int n, double[][] seconds) {
        double[] us = new double[seconds.length];
        double[] rows = new double[seconds.length];
        for (int i = 0; i < seconds.length; i++) {
            us[i] = seconds[i][0] * 1e6 / n;
            rows[i] = (double) n * batch * threads / seconds[i][0];
        }
        Arrays.sort(us);
        Arrays.sort(rows);
        return new Result(mode, batch, threads, median(us), us[0], us[us.length - 1], median(rows), rows[0], rows[rows.length - 1], n, seconds.length);
    }

    static double median(double[] sorted) {
        int m = sorted.length / 2;
        return sorted.length % 2 == 1 ? sorted[m] : (sorted[m - 1] + sorted[m]) / 2;
    }

    /** One worker's loop body; {@code close} releases what it holds. */
    private interface Worker extends AutoCloseable {
        void call();

        @Override
        default void close() {
        }
    }

    private Worker eagerWorker(float[] input, long[] shape) {
        return () -> {
            Tensor y = block.forward(Tensor.of(TensorData.ofFloats(shape, input)));
            y.toFloatArray();
        };
    }

    private static Worker compiledWorker(CompiledModel model, float[] input, int batch) {
        Executor executor = model.newExecutor(batch);
        float[] output = new float[(int) model.graph().outputs().get(0).type().shape().elementCount(batch)];
        return new Worker() {
            @Override
            public void call() {
                executor.setInput(0, input, 0, batch);
                executor.run(batch);
                executor.getOutput(0, output, 0);
            }

            @Override
            public void close() {
                executor.close();
            }
        };
    }

    /** Wall seconds for {@code threads} workers to make {@code n} calls each, started together. */
    private static double time(IntFunction<Worker> factory, int threads, int n) throws Exception {
        Worker[] workers = new Worker[threads];
        for (int t = 0; t < threads; t++) {
            workers[t] = factory.apply(t);
        }
        try {
            if (threads == 1) {
                long start = System.nanoTime();
                for (int i = 0; i < n; i++) {
                    workers[0].call();
                }
                return (System.nanoTime() - start) / 1e9;
            }
            CyclicBarrier barrier = new CyclicBarrier(threads + 1);
            Thread[] pool = new Thread[threads];
            Throwable[] failure = new Throwable[1];
            for (int t = 0; t < threads; t++) {
                Worker w = workers[t];
                pool[t] = new Thread(() -> {
                    try {
                        barrier.await();
                        for (int i = 0; i < n; i++) {
                            w.call();
                        }
                        barrier.await();
                    } catch (Throwable e) {
                        failure[0] = e;
                        barrier.reset();
                    }
                }, "kiln-bench-" + t);
                pool[t].start();
            }
            barrier.await();
            long start = System.nanoTime();
            barrier.await();
            long end = System.nanoTime();
            for (Thread thread : pool) {
                thread.join();
            }
            if (failure[0] != null) {
                throw new IllegalStateException("benchmark worker failed", failure[0]);
            }
            return (end - start) / 1e9;
        } finally {
            for (Worker w : workers) {
                w.close();
            }
        }
    }

    static float[] randomInput(int n, long seed) {
        Random random = new Random(seed);
        float[] values = new float[n];
        for (int i = 0; i < n; i++) {
            values[i] = (float) random.nextGaussian();
        }
        return values;
    }

    /** The results as the JSON {@code bench --json} writes. */
    public static String toJson(List<Result> results) {
        StringBuilder sb = new StringBuilder("{\"results\":[");
        for (int i = 0; i < results.size(); i++) {
            Result r = results.get(i);
            sb.append(i > 0 ? ",\n  " : "\n  ").append(String.format(java.util.Locale.ROOT,
                    "{\"mode\":\"%s\",\"batch\":%d,\"threads\":%d,\"us_per_call\":%.3f,\"us_per_call_min\":%.3f,\"us_per_call_max\":%.3f,"
                            + "\"rows_per_s\":%.1f,\"rows_per_s_min\":%.1f,\"rows_per_s_max\":%.1f,\"calls\":%d,\"repetitions\":%d}",
                    r.mode(), r.batch(), r.threads(), r.usPerCall(), r.usPerCallMin(), r.usPerCallMax(),
                    r.rowsPerSecond(), r.rowsPerSecondMin(), r.rowsPerSecondMax(), r.calls(), r.repetitions()));
        }
        return sb.append("\n]}\n").toString();
    }
}
