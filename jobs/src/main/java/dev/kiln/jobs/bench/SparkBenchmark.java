package dev.kiln.jobs.bench;

import dev.kiln.engine.Kiln;
import dev.kiln.engine.exec.CompiledModel;
import dev.kiln.engine.zoo.ModelZoo;
import dev.kiln.format.store.ModelStore;
import dev.kiln.spark.KilnMetrics;
import dev.kiln.spark.KilnModel;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;

import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;

/**
 * Spark end to end: N rows of {@code array<float>[512]} (cached) scored by the seed MLP through {@code KilnModel} on
 * {@code local[2]}, timed over full evaluation (a no-op sink), beside a bare scan of the same cached input and the raw
 * engine's rate on the same 2 cores (2 workers, batch 1024), repetitions interleaved in one run.
 */
public final class SparkBenchmark {
    /** Medians (and min, max) of the repetitions. */
    public record Result(long rows, double sparkRowsPerSecond, double sparkMin, double sparkMax, double scanRowsPerSecond,
                         double engineRowsPerSecond, double convertSeconds, double computeSeconds) {
        public double ratio() {
            return sparkRowsPerSecond / engineRowsPerSecond;
        }
    }

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
            Dataset<Row> input = spark.range(0, rows, 1, 2)
                    .selectExpr("id", "transform(sequence(1, 512), i -> cast(sin(id * 0.37 + i) as float)) AS features")
                    .cache();
            long count = input.count();
            KilnModel kiln = new KilnModel().setModelUri(uri).setInputCols("features").setOutputCols("y").setBatchSize(batch);
            SeedBenchmark engine = new SeedBenchmark(entry.block(), entry.signature(), 1000, 262_144, 1, new PrintStream(PrintStream.nullOutputStream()), false);
            double[] spark2 = new double[repetitions];
            double[] scans = new double[repetitions];
            double[] raw = new double[repetitions];
            KilnMetrics metrics = null;
            noop(input);
            noop(kiln.transform(input));
            for (int r = 0; r < repetitions; r++) {
                long t0 = System.nanoTime();
                noop(input);
                scans[r] = count / ((System.nanoTime() - t0) / 1e9);
                Dataset<Row> scored = kiln.transform(input);
                long t1 = System.nanoTime();
                noop(scored);
                spark2[r] = count / ((System.nanoTime() - t1) / 1e9);
                metrics = kiln.lastMetrics();
                raw[r] = engine.run(List.of(1024), List.of(2)).get(0).rowsPerSecond();
                log.printf("  repetition %d: Spark %,.0f rows/s, bare scan %,.0f rows/s, raw engine %,.0f rows/s%n", r + 1, spark2[r], scans[r], raw[r]);
            }
            Arrays.sort(spark2);
            Arrays.sort(scans);
            Arrays.sort(raw);
            Result result = new Result(count, SeedBenchmark.median(spark2), spark2[0], spark2[spark2.length - 1], SeedBenchmark.median(scans),
                    SeedBenchmark.median(raw), metrics.convertNanos() / 1e9, metrics.computeNanos() / 1e9);
            log.printf("Spark local[2], %,d rows, batch %d: %,.0f rows/s (%,.0f-%,.0f), raw engine (2 workers) %,.0f rows/s: %.2fx raw; bare scan %,.0f rows/s%n",
                    count, batch, result.sparkRowsPerSecond(), result.sparkMin(), result.sparkMax(), result.engineRowsPerSecond(), result.ratio(),
                    result.scanRowsPerSecond());
            log.println("Last repetition: " + metrics.summary());
            return result;
        } finally {
            spark.stop();
            try (var files = Files.walk(dir)) {
                files.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
    }

    private static void noop(Dataset<Row> frame) {
        frame.write().format("noop").mode("overwrite").save();
    }
}
