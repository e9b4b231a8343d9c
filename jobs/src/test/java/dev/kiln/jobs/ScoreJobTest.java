package dev.kiln.jobs;

import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

/** bin/kiln score (the spark-submit main class' code path) end to end on local[2]: Parquet in, Parquet out, PyTorch values. */
class ScoreJobTest {
    private static final Path MLP = Paths.get(System.getProperty("kiln.models.dir", "../shared/models"), "mlp");

    @Test
    void scoresAParquetTableAndReproducesPyTorch(@TempDir Path dir) {
        Path model = dir.resolve("mlp.kiln");
        assertThat(KilnCli.run(new String[] {"compile", "--model", "zoo:seed-mlp", "--weights", MLP.resolve("weights.safetensors").toString(),
                "--out", model.toString(), "--no-validate"}, System.out, System.err)).isZero();
        float[] x = dev.kiln.format.safetensors.Safetensors.read(MLP.resolve("inputs.safetensors")).get("x").toFloatArray();
        float[] expected = dev.kiln.format.safetensors.Safetensors.read(MLP.resolve("expected.safetensors")).get("y").toFloatArray();
        Path input = dir.resolve("in.parquet");
        Path output = dir.resolve("out.parquet");
        SparkSession spark = SparkSession.builder().master("local[2]").config("spark.ui.enabled", "false")
                .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1").getOrCreate();
        List<Row> rows = new ArrayList<>();
        for (int r = 0; r < 8; r++) {
            List<Float> features = new ArrayList<>();
            for (int j = 0; j < 512; j++) {
                features.add(x[r * 512 + j]);
            }
            rows.add(RowFactory.create((long) r, features));
        }
        StructType schema = new StructType().add("id", DataTypes.LongType).add("features", DataTypes.createArrayType(DataTypes.FloatType));
        spark.createDataFrame(rows, schema).repartition(2).write().parquet(input.toString());

        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int code = KilnCli.run(new String[] {"score", "--model", model.toString(), "--input", input.toString(), "--output", output.toString(),
                "--input-col", "features", "--output-col", "y", "--batch-size", "3", "--master", "local[2]"},
                new PrintStream(out, true, StandardCharsets.UTF_8), new PrintStream(err, true, StandardCharsets.UTF_8));
        assertThat(code).as(err.toString(StandardCharsets.UTF_8)).isZero();
        assertThat(out.toString(StandardCharsets.UTF_8)).contains("Scored 8 rows").contains("Kiln scored 8 rows");

        ByteArrayOutputStream missingErr = new ByteArrayOutputStream();
        Path absent = dir.resolve("absent.parquet");
        int missing = KilnCli.run(new String[] {"score", "--model", model.toString(), "--input", absent.toString(), "--output", dir.resolve("o").toString(),
                "--master", "local[2]"}, new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8),
                new PrintStream(missingErr, true, StandardCharsets.UTF_8));
        assertThat(missing).isEqualTo(1);
        assertThat(missingErr.toString(StandardCharsets.UTF_8).strip()).startsWith("kiln score: Cannot read input table " + absent).doesNotContain("\n");

        SparkSession reader = SparkSession.builder().master("local[2]").config("spark.ui.enabled", "false")
                .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1").getOrCreate();
        try {
            List<Row> scored = new ArrayList<>(reader.read().parquet(output.toString()).collectAsList());
            scored.sort(Comparator.comparingLong(r -> r.getLong(0)));
            assertThat(scored).hasSize(8);
            for (Row row : scored) {
                int id = (int) row.getLong(0);
                List<Float> y = row.getList(row.fieldIndex("y"));
                for (int j = 0; j < 2; j++) {
                    float e = expected[id * 2 + j];
                    assertThat(y.get(j)).isCloseTo(e, within((float) (1e-6 + 1e-5 * Math.abs(e))));
                }
            }
        } finally {
            reader.stop();
        }
    }
}
