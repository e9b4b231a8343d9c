package dev.kiln.jobs;

import dev.kiln.spark.KilnModel;
import dev.kiln.spark.SparkInternals;
import org.apache.spark.api.java.function.FlatMapFunction;
import org.apache.spark.rdd.RDD;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.catalyst.expressions.GenericInternalRow;
import org.apache.spark.sql.catalyst.expressions.UnsafeArrayData;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SaveMode;
import org.apache.spark.sql.SparkSession;

import java.io.PrintStream;
import java.nio.file.Path;
import java.util.Iterator;

/** The demo's Spark part: generate rows as Parquet, score them with KilnModel on local[2], write the predictions. */
final class SparkDemo {
    record Summary(Path input, Path output, long rows, double rowsPerSecond) { }

    private SparkDemo() {
    }

    /**
     * {@code rows} rows of (id, features: array<float>[512]) with values uniform in [-2, 2) from a per-row xorshift
     * generator, built as internal rows (a SQL expression per element took 160 s for a million rows).
     */
    static Dataset<Row> generate(SparkSession spark, long rows) {
        StructType schema = new StructType().add("id", DataTypes.LongType, false)
                .add("features", DataTypes.createArrayType(DataTypes.FloatType, false), false);
        FlatMapFunction<Iterator<Long>, InternalRow> make = ids -> new Iterator<>() {
            private final float[] values = new float[512];

            @Override
            public boolean hasNext() {
                return ids.hasNext();
            }

            @Override
            public InternalRow next() {
                long id = ids.next();
                long state = id * 0x9E3779B97F4A7C15L + 1;
                for (int i = 0; i < values.length; i++) {
                    state ^= state << 13;
                    state ^= state >>> 7;
                    state ^= state << 17;
                    values[i] = ((state >>> 40) / (float) (1 << 24)) * 4f - 2f;
                }
                return new GenericInternalRow(new Object[] {id, UnsafeArrayData.fromPrimitiveArray(values)});
            }
        };
        RDD<InternalRow> internal = spark.range(0, rows, 1, 2).javaRDD().mapPartitions(make).rdd();
        return SparkInternals.fromInternalRdd(spark, internal, schema);
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
            generate(spark, rows).write().mode(SaveMode.Overwrite).parquet(input.toString());
            out.printf("   generated in %.1f s%n", (System.nanoTime() - t0) / 1e9);

            KilnModel kiln = new KilnModel().setModelUri(modelUri).setInputCols("features").setOutputCols("scores");
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
