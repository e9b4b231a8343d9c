package dev.kiln.jobs;

import dev.kiln.spark.KilnModel;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SaveMode;
import org.apache.spark.sql.SparkSession;

import java.io.PrintStream;
import java.nio.file.Path;

/** The demo's Spark part: generate rows as Parquet, score them with KilnModel on local[2], write the predictions. */
final class SparkDemo {
    record Summary(Path input, Path output, long rows, double rowsPerSecond) { }

    private SparkDemo() {
    }

    static Summary run(Path dir, String modelUri, int rows, PrintStream out) {
        Path input = dir.resolve("rows.parquet");
        Path output = dir.resolve("predictions.parquet");
        SparkSession spark = SparkSession.builder().master("local[2]").appName("kiln-demo")
                .config("spark.ui.enabled", "false").config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
                .getOrCreate();
        try {
            long t0 = System.nanoTime();
            out.printf("   generating %,d rows -> %s ...%n", rows, input);
            spark.range(0, rows, 1, 2)
                    .selectExpr("id", "transform(sequence(1, 512), i -> cast(sin(id * 0.37 + i) * 2 as float)) AS features")
                    .write().mode(SaveMode.Overwrite).parquet(input.toString());
            out.printf("   generated in %.1f s%n", (System.nanoTime() - t0) / 1e9);

            KilnModel kiln = new KilnModel().setModelUri(modelUri).setInputCols("features").setOutputCols("scores").setBatchSize(1024);
            out.printf("   scoring -> %s ...%n", output);
            long t1 = System.nanoTime();
            Dataset<Row> scored = kiln.transform(spark.read().parquet(input.toString()));
            scored.select("id", "scores").write().mode(SaveMode.Overwrite).parquet(output.toString());
            double seconds = (System.nanoTime() - t1) / 1e9;
            long count = kiln.lastMetrics().rows();
            out.printf("   scored %,d rows in %.1f s: %,.0f rows/s (read Parquet, score, write Parquet)%n", count, seconds, count / seconds);
            out.println("   " + kiln.lastMetrics().summary());
            out.println("   first predictions:");
            for (Row row : spark.read().parquet(output.toString()).orderBy("id").limit(3).collectAsList()) {
                out.printf("     id %d -> %s%n", row.getLong(0), row.getList(1));
            }
            return new Summary(input, output, count, count / seconds);
        } finally {
            spark.stop();
        }
    }
}
