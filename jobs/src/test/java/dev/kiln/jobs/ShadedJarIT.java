package dev.kiln.jobs;

import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.File;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

/**
 * The shaded jar is complete: a separate driver JVM whose classpath is only the shaded jar plus Spark's jars runs
 * {@code dev.kiln.jobs.ScoreJob} against {@code local-cluster[2,1,1024]} (two executor JVMs that get Kiln from the
 * jar through spark.jars), and the predictions match PyTorch.
 */
class ShadedJarIT {
    private static final Path MLP = Paths.get(System.getProperty("kiln.models.dir", "../shared/models"), "mlp");

    @Test
    void scoreJobRunsOnALocalClusterFromTheShadedJarAlone(@TempDir Path dir) throws Exception {
        Path jar = Path.of(System.getProperty("kiln.shaded.jar"));
        Path sparkHome = Path.of(System.getProperty("kiln.spark.home"));
        assertThat(jar).isRegularFile();
        Files.writeString(sparkHome.resolve("RELEASE"), "Spark jars for Kiln's shaded-jar test\n");

        Path model = dir.resolve("mlp.kiln");
        assertThat(KilnCli.run(new String[] {"compile", "--model", "zoo:seed-mlp", "--weights", MLP.resolve("weights.safetensors").toString(),
                "--out", model.toString()}, System.out, System.err)).isZero();
        float[] x = dev.kiln.format.safetensors.Safetensors.read(MLP.resolve("inputs.safetensors")).get("x").toFloatArray();
        float[] expected = dev.kiln.format.safetensors.Safetensors.read(MLP.resolve("expected.safetensors")).get("y").toFloatArray();
        Path input = dir.resolve("in.parquet");
        Path output = dir.resolve("out.parquet");
        SparkSession local = SparkSession.builder().master("local[2]").config("spark.ui.enabled", "false")
                .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1").getOrCreate();
        try {
            List<Row> rows = new ArrayList<>();
            for (int r = 0; r < 8; r++) {
                List<Float> features = new ArrayList<>();
                for (int j = 0; j < 512; j++) {
                    features.add(x[r * 512 + j]);
                }
                rows.add(RowFactory.create((long) r, features));
            }
            StructType schema = new StructType().add("id", DataTypes.LongType).add("features", DataTypes.createArrayType(DataTypes.FloatType));
            local.createDataFrame(rows, schema).repartition(4).write().parquet(input.toString());
        } finally {
            local.stop();
        }

        String opens = System.getProperty("kiln.jvm.opens");
        List<String> command = new ArrayList<>();
        command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        command.addAll(Arrays.asList(opens.split(" ")));
        command.addAll(List.of("-Xmx1g",
                "-cp", jar + File.pathSeparator + sparkHome.resolve("jars") + File.separator + "*",
                "-Dspark.jars=" + jar.toUri(),
                "-Dspark.executor.extraJavaOptions=" + opens,
                "-Dspark.ui.enabled=false", "-Dspark.driver.host=127.0.0.1", "-Dspark.driver.bindAddress=127.0.0.1",
                "-Dspark.executorEnv.OPENBLAS_CORETYPE=SkylakeX", "-Dspark.executorEnv.OMP_WAIT_POLICY=PASSIVE", "-Dspark.executorEnv.OMP_NUM_THREADS=1",
                "dev.kiln.jobs.ScoreJob", "--model", model.toString(), "--input", input.toString(), "--output", output.toString(),
                "--input-col", "features", "--output-col", "y", "--batch-size", "2", "--master", "local-cluster[2,1,1024]"));
        ProcessBuilder builder = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(dir.resolve("driver.log").toFile());
        builder.environment().put("SPARK_HOME", sparkHome.toString());
        builder.environment().put("SPARK_SCALA_VERSION", "2.13");
        builder.environment().put("SPARK_LOCAL_IP", "127.0.0.1");
        Process driver = builder.start();
        boolean finished = driver.waitFor(300, TimeUnit.SECONDS);
        String log = Files.readString(dir.resolve("driver.log"), StandardCharsets.UTF_8);
        if (!finished) {
            driver.destroyForcibly();
        }
        assertThat(finished).as("driver finished within 300 s; log:%n%s", log).isTrue();
        assertThat(driver.exitValue()).as("driver exit code; log:%n%s", log).isZero();
        assertThat(log).contains("Scored 8 rows");

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
