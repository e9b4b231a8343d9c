package dev.kiln.jobs.bench.jmh;

import dev.kiln.engine.Kiln;
import dev.kiln.engine.exec.CompiledModel;
import dev.kiln.engine.nn.Block;
import dev.kiln.engine.nn.Dense;
import dev.kiln.engine.nn.Sequential;
import dev.kiln.engine.ops.Activation;
import dev.kiln.engine.zoo.ModelZoo;
import dev.kiln.format.store.ModelStore;
import dev.kiln.spark.KilnModel;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.catalyst.expressions.GenericInternalRow;
import org.apache.spark.sql.catalyst.expressions.UnsafeArrayData;
import org.apache.spark.sql.catalyst.expressions.UnsafeProjection;
import org.apache.spark.sql.catalyst.expressions.UnsafeRow;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;
import org.openjdk.jmh.infra.Blackhole;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Iterator;
import java.util.concurrent.TimeUnit;

/**
 * The Spark connector's per-row work at a resolution the end-to-end Spark benchmark cannot give on a shared host:
 * a partition of Spark's internal rows (a bigint id and an {@code array<float>[512]}, the Spark benchmark's rows)
 * through {@link KilnModel#scoreLocally}, the code a task runs for each partition (its plan, an executor from the JVM's
 * pool and Arrow vectors for it; batches of 512 rows copied in with their NaN screen, the compiled model, output rows
 * assembled), with no scheduler, scan or sink around it. One batch per partition shows what a partition costs
 * whatever its size; 131,072 rows, what a row costs.
 * With {@code dense-512x2} (one 512 → 2 dense layer) the model's share is small and the rest is the connector's
 * conversion; {@code seed-mlp} is the benchmark's model. {@code harnessOnly} hands the same rows to the same sink without
 * Kiln: the harness's own cost. Nanoseconds per row = microseconds per operation × 1000 / rows.
 * Run with {@code bin/kiln bench --jmh --only Scoring}.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 5, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(1)
public class ScoringBenchmarks {
    @State(Scope.Benchmark)
    public static class Rows {
        @Param({"dense-512x2", "seed-mlp"})
        public String model;
        /** Rows per partition: one batch shows the fixed cost of a partition, 131,072 the cost per row. */
        @Param({"512", "131072"})
        public int rows;
        SparkSession spark;
        KilnModel kiln;
        StructType schema;
        /** 64 distinct rows, handed out in turn: Spark's scan hands each row over from a buffer it reuses, hot in cache. */
        final UnsafeRow[] ring = new UnsafeRow[64];
        Path dir;

        @Setup(Level.Trial)
        public void setup() throws Exception {
            spark = SparkSession.builder().master("local[1]").appName("kiln-scoring-jmh").config("spark.ui.enabled", "false")
                    .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1").getOrCreate();
            ModelZoo.Entry seed = ModelZoo.get("seed-mlp");
            Block block = model.equals("seed-mlp") ? seed.block() : new Sequential().add(new Dense(2, Activation.NONE, true, 512));
            block.setSeed(2024);
            dir = Files.createTempDirectory("kiln-scoring-jmh");
            String uri = dir.resolve("model.kiln").toString();
            try (CompiledModel compiled = Kiln.compile(block, seed.signature())) {
                new ModelStore(new org.apache.hadoop.conf.Configuration()).save(compiled, model, null, uri, true);
            }
            kiln = new KilnModel().setModelUri(uri).setInputCols("features").setOutputCols("y");
            schema = new StructType().add("id", DataTypes.LongType, false).add("features", DataTypes.createArrayType(DataTypes.FloatType, false), false);
            UnsafeProjection projection = UnsafeProjection.create(schema);
            float[] features = new float[512];
            for (int r = 0; r < ring.length; r++) {
                for (int i = 0; i < features.length; i++) {
                    features[i] = (float) Math.sin(r * 0.37 + i + 1);
                }
                ring[r] = projection.apply(new GenericInternalRow(new Object[] {(long) r, UnsafeArrayData.fromPrimitiveArray(features)})).copy();
            }
        }

        Iterator<InternalRow> rows() {
            return new Iterator<>() {
                int i;

                @Override
                public boolean hasNext() {
                    return i < rows;
                }

                @Override
                public InternalRow next() {
                    return ring[i++ & 63];
                }
            };
        }

        @TearDown(Level.Trial)
        public void close() throws Exception {
            // Where the last partition's time went, as the connector's metrics split it (printed in the fork's output).
            dev.kiln.spark.KilnMetrics last = kiln.lastMetrics();
            double n = Math.max(1, last.rows());
            System.out.printf("%n%s, %d rows per partition, the last partition: converting %.0f ns per row, computing %.0f ns per row"
                    + " (handing the rows out, and the partition's set-up, are in neither)%n", model, rows, last.convertNanos() / n, last.computeNanos() / n);
            spark.stop();
            try (var files = Files.walk(dir)) {
                files.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
    }

    @Benchmark
    public long scorePartition(Rows s, Blackhole sink) {
        return s.kiln.scoreLocally(s.spark, s.schema, s.rows(), sink::consume);
    }

    @Benchmark
    public long harnessOnly(Rows s, Blackhole sink) {
        long count = 0;
        for (Iterator<InternalRow> rows = s.rows(); rows.hasNext(); count++) {
            sink.consume(rows.next());
        }
        return count;
    }
}
