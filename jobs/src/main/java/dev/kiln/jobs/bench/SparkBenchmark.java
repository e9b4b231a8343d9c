package dev.kiln.jobs.bench;

import dev.kiln.engine.Kiln;
import dev.kiln.engine.exec.CompiledModel;
import dev.kiln.engine.zoo.ModelZoo;
import dev.kiln.format.store.ModelStore;
import dev.kiln.spark.KilnMetrics;
import dev.kiln.spark.KilnModel;
import dev.kiln.spark.SparkInternals;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.catalyst.expressions.GenericInternalRow;
import org.apache.spark.sql.catalyst.expressions.UnsafeArrayData;
import org.apache.spark.sql.catalyst.expressions.UnsafeProjection;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;

import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;

/**
 * Spark end to end: N rows of {@code array<float>[512]} (cached) scored by the seed MLP through {@code KilnModel} on
 * {@code local[2]}, timed over full evaluation (a no-op sink), beside a bare scan of the same cached input, the same
 * transform through the RDD fallback ({@code spark.kiln.planNode=false}: an RDD-backed DataFrame, which copies every
 * output row once more) and the raw engine's rate on the same 2 cores (2 workers; at 1,024 rows and at each batch
 * size timed), repetitions interleaved in one run after untimed ones that let the JIT compilers settle.
 */
public final class SparkBenchmark {
    /** Medians (and min, max) of the repetitions. */
    public record Result(long rows, int batch, double sparkRowsPerSecond, double sparkMin, double sparkMax, double scanRowsPerSecond,
                         double rddPathRowsPerSecond, double engineRowsPerSecond, double convertSeconds, double computeSeconds) {
        public double ratio() {
            return sparkRowsPerSecond / engineRowsPerSecond;
        }
    }

    /**
     * Untimed repetitions before the timed ones: at least {@value #MIN_WARMUPS}, then more until one spends under
     * {@link #SETTLED_JIT_SHARE} of the cores' time in the JIT compilers, at most {@value #MAX_WARMUPS}.
     */
    static final int MIN_WARMUPS = 3;
    static final int MAX_WARMUPS = 15;
    static final double SETTLED_JIT_SHARE = 0.02;

    private SparkBenchmark() {
    }

    /**
     * Runs the benchmark with the transform at each of {@code batches} (0: the model's default) in every repetition,
     * interleaved. The raw engine runs at 1,024 rows and at each other batch size in the same repetitions; each batch
     * size's ratio is against the faster raw rate of the two, so a batch size that suits the engine better is not
     * counted as Spark's gain. Returns one result per batch size.
     */
    public static List<Result> run(long rows, int repetitions, List<Integer> batches, PrintStream log) throws Exception {
        return run(rows, repetitions, batches, null, 2, log);
    }

    /**
     * As {@link #run(long, int, List, PrintStream)}, reading {@code parquet} (a table with an {@code array<float>[512]}
     * column named {@code features}, as {@code bin/kiln demo} writes) instead of generated, cached rows, when not null:
     * the bare scan is then the Parquet decoding that scoring also pays.
     */
    public static List<Result> run(long rows, int repetitions, List<Integer> batches, String parquet, int partitions, PrintStream log) throws Exception {
        Path dir = Files.createTempDirectory("kiln-spark-bench");
        ModelZoo.Entry entry = ModelZoo.get("seed-mlp");
        entry.block().setSeed(2024);
        String uri = dir.resolve("mlp.kiln").toString();
        try (CompiledModel model = Kiln.compile(entry.block(), entry.signature())) {
            new ModelStore(new org.apache.hadoop.conf.Configuration()).save(model, "seed-mlp", null, uri, true);
        }
        SparkSession spark = SparkSession.builder().master("local[2]").appName("kiln-spark-bench")
                .config("spark.ui.enabled", "false").config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
                .getOrCreate();
        try {
            Dataset<Row> input;
            if (parquet == null) {
                log.printf("Generating and caching %,d rows of array<float>[512] in %d partitions ...%n", rows, partitions);
                input = generate(spark, rows, partitions).cache();
            } else {
                log.printf("Reading %s (Parquet, not cached: every pass decodes it) ...%n", parquet);
                input = spark.read().parquet(parquet);
            }
            long count = input.count();
            int variants = batches.size();
            KilnModel[] kiln = new KilnModel[variants];
            int[] effective = new int[variants];
            for (int v = 0; v < variants; v++) {
                kiln[v] = new KilnModel().setModelUri(uri).setInputCols("features").setOutputCols("y");
                if (batches.get(v) > 0) {
                    kiln[v].setBatchSize(batches.get(v));
                }
                effective[v] = kiln[v].batchSizeFor(input.schema());
            }
            // The raw engine at 1,024 rows and at every other batch size timed.
            List<Integer> rawBatches = new java.util.ArrayList<>(List.of(1024));
            for (int b : effective) {
                if (!rawBatches.contains(b)) {
                    rawBatches.add(b);
                }
            }
            SeedBenchmark engine = new SeedBenchmark(entry.block(), entry.signature(), 1000, 262_144, 1, new PrintStream(PrintStream.nullOutputStream()), false);
            double[][] spark2 = new double[variants][repetitions];
            double[] scans = new double[repetitions];
            double[] rddPath = new double[repetitions];
            double[][] raw = new double[rawBatches.size()][repetitions];
            KilnMetrics[] metrics = new KilnMetrics[variants];
            TaskTime taskTime = new TaskTime();
            spark.sparkContext().addSparkListener(taskTime);
            double[] wallSeconds = new double[variants];
            double[] taskRun = new double[variants];
            double[] taskCpu = new double[variants];
            String[] schedule = new String[variants];
            // Warm-up, untimed: whole repetitions (every variant, the fallback and the raw engine, so each one's code is
            // compiled and the compile queues drain) until the JIT compilers have settled. On 2 cores the compilers run
            // beside both task threads: after three warm-up passes they still took 50-600 ms of each ~1.9 s scored job.
            noop(input);
            int warmups = 0;
            boolean warming = true;
            for (int r = 0; r < repetitions; ) {
                long cycleStart = System.nanoTime();
                long cycleJit = jitMillis();
                settle();
                taskTime.reset();
                long scanStart = System.currentTimeMillis();
                long t0 = System.nanoTime();
                noop(input);
                scans[r] = count / ((System.nanoTime() - t0) / 1e9);
                long scanEnd = System.currentTimeMillis();
                spark.sparkContext().listenerBus().waitUntilEmpty();
                // The same action without Kiln: what of a scored job's driver and scheduling time is Spark's own.
                String scanSchedule = taskTime.schedule() + "; " + taskTime.driver(scanStart, scanEnd);
                StringBuilder line = new StringBuilder(String.format("  repetition %d:", r + 1));
                StringBuilder detail = new StringBuilder();
                for (int v = 0; v < variants; v++) {
                    Dataset<Row> scored = kiln[v].transform(input);
                    settle();
                    taskTime.reset();
                    long t1 = System.nanoTime();
                    long actionStart = System.currentTimeMillis();
                    long jitBefore = jitMillis();
                    noop(scored);
                    long jit = jitMillis() - jitBefore;
                    wallSeconds[v] = (System.nanoTime() - t1) / 1e9;
                    long actionEnd = System.currentTimeMillis();
                    spark2[v][r] = count / wallSeconds[v];
                    // Listener events arrive asynchronously: the job's task ends are read once the bus has delivered them.
                    spark.sparkContext().listenerBus().waitUntilEmpty();
                    metrics[v] = kiln[v].lastMetrics();
                    taskRun[v] = taskTime.runSeconds();
                    taskCpu[v] = taskTime.cpuSeconds();
                    schedule[v] = taskTime.schedule() + "; " + taskTime.driver(actionStart, actionEnd) + "; JIT compiling " + jit + " ms";
                    line.append(String.format(" Spark (batch %d) %,.0f rows/s,", effective[v], spark2[v][r]));
                    detail.append(String.format("%n    batch %d: tasks %.2f s, Kiln's share %.2f s; %s", effective[v], taskRun[v],
                            (metrics[v].convertNanos() + metrics[v].computeNanos()) / 1e9, schedule[v]));
                }
                long t2 = System.nanoTime();
                noop(rddPath(spark, kiln[0], input));
                rddPath[r] = count / ((System.nanoTime() - t2) / 1e9);
                line.append(String.format(" bare scan %,.0f rows/s, RDD fallback (batch %d) %,.0f rows/s,", scans[r], effective[0], rddPath[r]));
                detail.append(String.format("%n    bare scan: %s", scanSchedule));
                for (int e = 0; e < rawBatches.size(); e++) {
                    settle();
                    raw[e][r] = engine.run(List.of(rawBatches.get(e)), List.of(2)).get(0).rowsPerSecond();
                    line.append(String.format(" raw engine (batch %d) %,.0f rows/s", rawBatches.get(e), raw[e][r]));
                }
                if (warming) {
                    warmups++;
                    double share = (jitMillis() - cycleJit) / (2 * (System.nanoTime() - cycleStart) / 1e6);
                    log.printf("  warm-up %d: the JIT compilers took %.1f%% of the 2 cores%n", warmups, 100 * share);
                    warming = warmups < MIN_WARMUPS || (share > SETTLED_JIT_SHARE && warmups < MAX_WARMUPS);
                } else {
                    log.println(line.append(detail));
                    r++;
                }
            }
            Arrays.sort(scans);
            Arrays.sort(rddPath);
            double[] rawMedian = new double[rawBatches.size()];
            for (int e = 0; e < rawBatches.size(); e++) {
                Arrays.sort(raw[e]);
                rawMedian[e] = SeedBenchmark.median(raw[e]);
            }
            List<Result> results = new java.util.ArrayList<>();
            for (int v = 0; v < variants; v++) {
                Arrays.sort(spark2[v]);
                double engineRate = Math.max(rawMedian[0], rawMedian[rawBatches.indexOf(effective[v])]);
                Result result = new Result(count, effective[v], SeedBenchmark.median(spark2[v]), spark2[v][0], spark2[v][repetitions - 1],
                        SeedBenchmark.median(scans), SeedBenchmark.median(rddPath), engineRate, metrics[v].convertNanos() / 1e9, metrics[v].computeNanos() / 1e9);
                results.add(result);
                log.printf("Spark local[2], %,d rows, batch %d: %,.0f rows/s (%,.0f-%,.0f), raw engine (2 workers, the faster of batch 1024 and %d) %,.0f rows/s: %.2fx raw%n",
                        count, effective[v], result.sparkRowsPerSecond(), result.sparkMin(), result.sparkMax(), effective[v], result.engineRowsPerSecond(), result.ratio());
                log.println("  last repetition: " + metrics[v].summary());
                log.printf("  last repetition: %.2f s wall x 2 cores = %.2f core-s; Spark task run time %.2f s (CPU %.2f s), Kiln's share %.2f s%n",
                        wallSeconds[v], 2 * wallSeconds[v], taskRun[v], taskCpu[v], (metrics[v].convertNanos() + metrics[v].computeNanos()) / 1e9);
                log.println("  last repetition: " + schedule[v]);
            }
            StringBuilder rawLine = new StringBuilder("Raw engine medians:");
            for (int e = 0; e < rawBatches.size(); e++) {
                rawLine.append(String.format(" batch %d %,.0f rows/s;", rawBatches.get(e), rawMedian[e]));
            }
            log.println(rawLine);
            log.printf("Bare scan %,.0f rows/s; RDD fallback (batch %d) %,.0f rows/s (%.2fx the batch-%d node)%n", SeedBenchmark.median(scans), effective[0],
                    SeedBenchmark.median(rddPath), SeedBenchmark.median(rddPath) / results.get(0).sparkRowsPerSecond(), effective[0]);
            return results;
        } finally {
            spark.stop();
            try (var files = Files.walk(dir)) {
                files.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
    }

    /**
     * {@code (id bigint, features array<float>[512])} with features[i] = sin(0.37 id + i + 1), in {@code partitions}
     * partitions, written as internal rows: Spark's own {@code transform(sequence(...), ...)} is interpreted and took
     * minutes for 1 M rows.
     */
    static Dataset<Row> generate(SparkSession spark, long rows, int partitions) {
        StructType schema = new StructType().add("id", DataTypes.LongType, false)
                .add("features", DataTypes.createArrayType(DataTypes.FloatType, false), false);
        List<Integer> parts = java.util.stream.IntStream.range(0, partitions).boxed().toList();
        JavaRDD<InternalRow> generated = JavaSparkContext.fromSparkContext(spark.sparkContext()).parallelize(parts, partitions)
                .mapPartitions(part -> {
                    int p = part.next();
                    long from = rows * p / partitions;
                    long to = rows * (p + 1) / partitions;
                    float[] features = new float[512];
                    UnsafeProjection projection = UnsafeProjection.create(schema);
                    return new java.util.Iterator<InternalRow>() {
                        long id = from;

                        @Override
                        public boolean hasNext() {
                            return id < to;
                        }

                        @Override
                        public InternalRow next() {
                            for (int i = 0; i < 512; i++) {
                                features[i] = (float) Math.sin(id * 0.37 + i + 1);
                            }
                            return projection.apply(new GenericInternalRow(new Object[] {id++, UnsafeArrayData.fromPrimitiveArray(features)}));
                        }
                    };
                });
        return SparkInternals.fromInternalRdd(spark, generated.rdd(), schema);
    }

    /**
     * Sums the run time and CPU time of the tasks that end after {@link #reset()}, and keeps when the first job after it
     * started and when the tasks were launched and ended (the scheduling delay, and the idle core while the slower task
     * runs).
     */
    private static final class TaskTime extends org.apache.spark.scheduler.SparkListener {
        private final java.util.concurrent.atomic.AtomicLong runMillis = new java.util.concurrent.atomic.AtomicLong();
        private final java.util.concurrent.atomic.AtomicLong cpuNanos = new java.util.concurrent.atomic.AtomicLong();
        private volatile long jobStart = -1;
        private volatile long jobEnd = -1;
        private final java.util.concurrent.atomic.AtomicInteger jobs = new java.util.concurrent.atomic.AtomicInteger();
        private final List<long[]> tasks = java.util.Collections.synchronizedList(new java.util.ArrayList<>());

        void reset() {
            runMillis.set(0);
            cpuNanos.set(0);
            tasks.clear();
            jobStart = -1;
            jobEnd = -1;
            jobs.set(0);
        }

        /** The first job that starts after {@link #reset()}. */
        @Override
        public void onJobStart(org.apache.spark.scheduler.SparkListenerJobStart start) {
            if (jobStart < 0) {
                jobStart = start.time();
            }
            jobs.incrementAndGet();
        }

        @Override
        public void onJobEnd(org.apache.spark.scheduler.SparkListenerJobEnd end) {
            jobEnd = Math.max(jobEnd, end.time());
        }

        /**
         * The driver's share of an action that ran from {@code actionStart} to {@code actionEnd} (epoch ms): how long
         * before its first job started (analysis, planning, the write's setup) and after its last job ended (commit),
         * when no task runs and both cores idle.
         */
        String driver(long actionStart, long actionEnd) {
            if (jobStart < 0 || jobEnd < 0) {
                return "no job seen";
            }
            return String.format("the action ran %d ms before its first job started and %d ms after its last job ended (%d jobs)",
                    jobStart - actionStart, actionEnd - jobEnd, jobs.get());
        }

        @Override
        public void onTaskEnd(org.apache.spark.scheduler.SparkListenerTaskEnd end) {
            if (end.taskMetrics() != null) {
                runMillis.addAndGet(end.taskMetrics().executorRunTime());
                cpuNanos.addAndGet(end.taskMetrics().executorCpuTime());
            }
            long gc = end.taskMetrics() == null ? 0 : end.taskMetrics().jvmGCTime();
            tasks.add(new long[] {end.taskInfo().launchTime(), end.taskInfo().finishTime(), gc});
        }

        double runSeconds() {
            return runMillis.get() / 1e3;
        }

        double cpuSeconds() {
            return cpuNanos.get() / 1e9;
        }

        /**
         * "first task launched N ms after the job started, the last task ended X ms after the one before it (T tasks);
         * the tasks' threads were on a CPU C of their W ms": with two cores, X is how long one core sat idle at the end
         * of the job, and W - C how long the task threads waited for a core (the host's other tenants, the JIT compilers).
         */
        String schedule() {
            synchronized (tasks) {
                if (tasks.isEmpty()) {
                    return "no tasks seen";
                }
                long firstLaunch = tasks.stream().mapToLong(t -> t[0]).min().getAsLong();
                long[] ends = tasks.stream().mapToLong(t -> t[1]).sorted().toArray();
                long gap = ends.length < 2 ? 0 : ends[ends.length - 1] - ends[ends.length - 2];
                long wall = tasks.stream().mapToLong(t -> t[1] - t[0]).sum();
                long cpu = cpuNanos.get() / 1_000_000;
                long gc = tasks.stream().mapToLong(t -> t[2]).sum();
                return String.format("first task launched %d ms after the job started, the last task ended %d ms after the one before it (%d tasks);"
                                + " the tasks' threads were on a CPU %d of their %d ms (GC %d ms)",
                        firstLaunch - jobStart, gap, tasks.size(), cpu, wall, gc);
            }
        }
    }

    /** The transform through the RDD fallback (an RDD-backed DataFrame instead of the plan node). */
    private static Dataset<Row> rddPath(SparkSession spark, KilnModel kiln, Dataset<Row> input) {
        spark.conf().set("spark.kiln.planNode", "false");
        try {
            return kiln.transform(input);
        } finally {
            spark.conf().unset("spark.kiln.planNode");
        }
    }

    /** Milliseconds the JIT compilers have spent so far in this JVM (all compiler threads), or 0 when not reported. */
    static long jitMillis() {
        java.lang.management.CompilationMXBean jit = java.lang.management.ManagementFactory.getCompilationMXBean();
        return jit != null && jit.isCompilationTimeMonitoringSupported() ? jit.getTotalCompilationTime() : 0;
    }

    /**
     * Waits (at most 3 s) until the JIT compilers have been idle for 200 ms, so that a timed job does not share the
     * cores with compilations queued by the work before it.
     */
    static void settle() throws InterruptedException {
        long deadline = System.nanoTime() + 3_000_000_000L;
        long last = jitMillis();
        int quiet = 0;
        while (quiet < 4 && System.nanoTime() < deadline) {
            Thread.sleep(50);
            long now = jitMillis();
            quiet = now == last ? quiet + 1 : 0;
            last = now;
        }
    }

    private static void noop(Dataset<Row> frame) {
        frame.write().format("noop").mode("overwrite").save();
    }
}
