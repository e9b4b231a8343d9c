package dev.kiln.jobs;

import dev.kiln.format.safetensors.Safetensors;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;

import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

/** The seed MLP's PyTorch reference rows as a Parquet table, and the check of a scored table against PyTorch. */
final class ReferenceTables {
    static final Path MLP = Paths.get(System.getProperty("kiln.models.dir", "../shared/models"), "mlp");

    private ReferenceTables() {
    }

    static SparkSession localSpark() {
        return SparkSession.builder().master("local[2]").config("spark.ui.enabled", "false")
                .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1").getOrCreate();
    }

    /** Writes (id, features) for the 8 reference inputs, in {@code partitions} files. */
    static void writeInputs(SparkSession spark, Path table, int partitions) {
        float[] x = Safetensors.read(MLP.resolve("inputs.safetensors")).get("x").toFloatArray();
        List<Row> rows = new ArrayList<>();
        for (int r = 0; r < 8; r++) {
            List<Float> features = new ArrayList<>();
            for (int j = 0; j < 512; j++) {
                features.add(x[r * 512 + j]);
            }
            rows.add(RowFactory.create((long) r, features));
        }
        StructType schema = new StructType().add("id", DataTypes.LongType).add("features", DataTypes.createArrayType(DataTypes.FloatType));
        spark.createDataFrame(rows, schema).repartition(partitions).write().parquet(table.toString());
    }

    /** The scored table holds the 8 rows with column {@code y} equal to PyTorch's outputs (1e-5 relative). */
    static void assertMatchesPyTorch(SparkSession spark, Path table) {
        float[] expected = Safetensors.read(MLP.resolve("expected.safetensors")).get("y").toFloatArray();
        List<Row> scored = new ArrayList<>(spark.read().parquet(table.toString()).collectAsList());
        scored.sort(Comparator.comparingLong(r -> r.getLong(0)));
        assertThat(scored).hasSize(8);
        for (Row row : scored) {
            int id = (int) row.getLong(0);
            List<Float> y = row.getList(row.fieldIndex("y"));
            for (int j = 0; j < 2; j++) {
                float e = expected[id * 2 + j];
                assertThat(y.get(j)).as("row %d output %d", id, j).isCloseTo(e, within((float) (1e-6 + 1e-5 * Math.abs(e))));
            }
        }
    }
}
