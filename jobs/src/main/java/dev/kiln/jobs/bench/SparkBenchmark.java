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
 * output row once more) and the raw engine's rate on the same 2 cores (2 workers, batch 1024), repetitions interleaved
 * in one run after {@value #WARMUP_PASSES} untimed scoring passes.
 */
public final class SparkBenchmark {
    /** Medians (and min, max) of the repetitions. */
    public record Result(long rows, double sparkRowsPerSecond, double sparkMin, double sparkMax, double scanRowsPerSecond,
                         double rddPathRowsPerSecond, double engineRowsPerSecond, double convertSeconds, double computeSeconds) {
        public double ratio() {
            return sparkRowsPerSecond / engineRowsPerSecond;
        }
    }

    /** Untimed scoring passes before the repetitions. */
    static final int WARMUP_PASSES = 3;

    private SparkBenchmark() {
    }

    public static Result run(long rows, int repetitions, int batch, PrintStream log) throws Exception {
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
            log.printf("Generating and caching %,d rows of array<float>[512] ...%n", rows);
            Dataset<Row> input = generate(spark, rows).cache();
            long count = input.count();
            KilnModel kiln = new KilnModel().setModelUri(uri).setInputCols("features").setOutputCols("y").setBatchSize(batch);
            SeedBenchmark engine = new SeedBenchmark(entry.block(), entry.signature(), 1000, 262_144, 1, new PrintStream(PrintStream.nullOutputStream()), false);
            double[] spark2 = new double[repetitions];
            double[] scans = new double[repetitions];
            double[] rddPath = new double[repetitions];
            double[] raw = new double[repetitions];
            KilnMetrics metrics = null;
            TaskTime taskTime = new TaskTime();
            spark.sparkContext().addSparkListener(taskTime);
            double wallSeconds = 0;
            double taskRun = 0;
            double taskCpu = 0;
            // Warm-up, untimed: a scan and three scoring passes. On 2 cores the JIT compiler competes with both task
            // threads, and the first passes measured converting 0.75-1.9 s against 0.3-0.5 s once compiled.
            noop(input);
            for (int w = 0; w < WARMUP_PASSES; w++) {
                noop(kiln.transform(input));
                noop(rddPath(spark, kiln, input));
            }
            for (int r = 0; r < repetitions; r++) {
                long t0 = System.nanoTime();
                noop(input);
                scans[r] = count / ((System.nanoTime() - t0) / 1e9);
                Dataset<Row> scored = kiln.transform(input);
                long t1 = System.nanoTime();
                taskTime.reset();
                noop(scored);
                wallSeconds = (System.nanoTime() - t1) / 1e9;
                spark2[r] = count / wallSeconds;
                metrics = kiln.lastMetrics();
                taskRun = taskTime.runSeconds();
                taskCpu = taskTime.cpuSeconds();
                long t2 = System.nanoTime();
                noop(rddPath(spark, kiln, input));
                rddPath[r] = count / ((System.nanoTime() - t2) / 1e9);
                raw[r] = engine.run(List.of(1024), List.of(2)).get(0).rowsPerSecond();
                log.printf("  repetition %d: Spark %,.0f rows/s, bare scan %,.0f rows/s, RDD fallback %,.0f rows/s, raw engine %,.0f rows/s%n",
                        r + 1, spark2[r], scans[r], rddPath[r], raw[r]);
            }
            Arrays.sort(spark2);
            Arrays.sort(scans);
            Arrays.sort(rddPath);
            Arrays.sort(raw);
            Result result = new Result(count, SeedBenchmark.median(spark2), spark2[0], spark2[spark2.length - 1], SeedBenchmark.median(scans),
                    SeedBenchmark.median(rddPath), SeedBenchmark.median(raw), metrics.convertNanos() / 1e9, metrics.computeNanos() / 1e9);
            log.printf("Spark local[2], %,d rows, batch %d: %,.0f rows/s (%,.0f-%,.0f), raw engine (2 workers) %,.0f rows/s: %.2fx raw; bare scan %,.0f rows/s; "
                            + "RDD fallback %,.0f rows/s (%.2fx raw)%n",
                    count, batch, result.sparkRowsPerSecond(), result.sparkMin(), result.sparkMax(), result.engineRowsPerSecond(), result.ratio(),
                    result.scanRowsPerSecond(), result.rddPathRowsPerSecond(), result.rddPathRowsPerSecond() / result.engineRowsPerSecond());
            log.println("Last repetition: " + metrics.summary());
            log.printf("Last repetition: %.2f s wall x 2 cores = %.2f core-s; Spark task run time %.2f s (CPU %.2f s), Kiln's share %.2f s%n",
                    wallSeconds, 2 * wallSeconds, taskRun, taskCpu, (metrics.convertNanos() + metrics.computeNanos()) / 1e9);
            return result;
        } finally {
            spark.stop();
            try (var files = Files.walk(dir)) {
                files.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
    }

    /**
     * {@code (id bigint, features array<float>[512])} with features[i] = sin(0.37 id + i + 1), two partitions, written
     * as internal rows: Spark's own {@code transform(sequence(...), ...)} is interpreted and took minutes for 1 M rows.
     */
    static Dataset<Row> generate(SparkSession spark, long rows) {
        StructType schema = new StructType().add("id", DataTypes.LongType, false)
                .add("features", DataTypes.createArrayType(DataTypes.FloatType, false), false);
        JavaRDD<InternalRow> generated = JavaSparkContext.fromSparkContext(spark.sparkContext()).parallelize(List.of(0, 1), 2)
                .mapPartitions(part -> {
                    int p = part.next();
                    long from = rows * p / 2;
                    long to = rows * (p + 1) / 2;
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

    /** Sums the run time and CPU time of the tasks that end after {@link #reset()}. */
    private static final class TaskTime extends org.apache.spark.scheduler.SparkListener {
        private final java.util.concurrent.atomic.AtomicLong runMillis = new java.util.concurrent.atomic.AtomicLong();
        private final java.util.concurrent.atomic.AtomicLong cpuNanos = new java.util.concurrent.atomic.AtomicLong();

        void reset() {
            runMillis.set(0);
            cpuNanos.set(0);
        }

        @Override
        public void onTaskEnd(org.apache.spark.scheduler.SparkListenerTaskEnd end) {
            if (end.taskMetrics() != null) {
                runMillis.addAndGet(end.taskMetrics().executorRunTime());
                cpuNanos.addAndGet(end.taskMetrics().executorCpuTime());
            }
        }

        double runSeconds() {
            return runMillis.get() / 1e3;
        }

        double cpuSeconds() {
            return cpuNanos.get() / 1e9;
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

    private static void noop(Dataset<Row> frame) {
        frame.write().format("noop").mode("overwrite").save();
    }
}
