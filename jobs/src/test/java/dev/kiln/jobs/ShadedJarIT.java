package dev.kiln.jobs;

import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.File;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The shaded jar is complete: a separate driver JVM whose classpath is only the shaded jar plus Spark's jars runs
 * {@code dev.kiln.jobs.ScoreJob} against {@code local-cluster[2,1,1024]} (two executor JVMs that get Kiln from the
 * jar through spark.jars), and the predictions match PyTorch.
 */
class ShadedJarIT {
    @Test
    void scoreJobRunsOnALocalClusterFromTheShadedJarAlone(@TempDir Path dir) throws Exception {
        Path jar = Path.of(System.getProperty("kiln.shaded.jar"));
        Path sparkHome = Path.of(System.getProperty("kiln.spark.home"));
        assertThat(jar).isRegularFile();
        Files.writeString(sparkHome.resolve("RELEASE"), "Spark jars for Kiln's shaded-jar test\n");

        Path model = dir.resolve("mlp.kiln");
        assertThat(KilnCli.run(new String[] {"compile", "--model", "zoo:seed-mlp", "--weights", ReferenceTables.MLP.resolve("weights.safetensors").toString(),
                "--out", model.toString()}, System.out, System.err)).isZero();
        Path input = dir.resolve("in.parquet");
        Path output = dir.resolve("out.parquet");
        SparkSession local = ReferenceTables.localSpark();
        try {
            ReferenceTables.writeInputs(local, input, 4);
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
                // No OMP_WAIT_POLICY: ScoreJob adds it for executors by default.
                "-Dspark.executorEnv.OMP_NUM_THREADS=1",
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

        SparkSession reader = ReferenceTables.localSpark();
        try {
            ReferenceTables.assertMatchesPyTorch(reader, output);
        } finally {
            reader.stop();
        }
    }
}
