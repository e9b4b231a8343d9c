package dev.kiln.jobs;

import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

import static org.assertj.core.api.Assertions.assertThat;

/** bin/kiln score (the spark-submit main class' code path) end to end on local[2]: Parquet in, Parquet out, PyTorch values. */
class ScoreJobTest {
    @Test
    void scoresAParquetTableAndReproducesPyTorch(@TempDir Path dir) {
        Path model = dir.resolve("mlp.kiln");
        assertThat(KilnCli.run(new String[] {"compile", "--model", "zoo:seed-mlp", "--weights", ReferenceTables.MLP.resolve("weights.safetensors").toString(),
                "--out", model.toString(), "--no-validate"}, System.out, System.err)).isZero();
        Path input = dir.resolve("in.parquet");
        Path output = dir.resolve("out.parquet");
        ReferenceTables.writeInputs(ReferenceTables.localSpark(), input, 2);

        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int code = KilnCli.run(new String[] {"score", "--model", model.toString(), "--input", input.toString(), "--output", output.toString(),
                "--input-col", "x=features", "--output-col", "y", "--batch-size", "3", "--master", "local[2]"},
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

        SparkSession reader = ReferenceTables.localSpark();
        try {
            ReferenceTables.assertMatchesPyTorch(reader, output);
        } finally {
            reader.stop();
        }
    }

    /** The job asks for sleeping OpenMP threads on executors unless the submitted configuration chose. */
    @Test
    void executorsGetAPassiveOpenMpWaitPolicyUnlessTheUserChoseOne() {
        assertThat(ScoreJob.executorDefaults(new org.apache.spark.SparkConf(false)))
                .containsExactly(java.util.Map.entry("spark.executorEnv.OMP_WAIT_POLICY", "PASSIVE"));
        assertThat(ScoreJob.executorDefaults(new org.apache.spark.SparkConf(false).set("spark.executorEnv.OMP_WAIT_POLICY", "ACTIVE"))).isEmpty();
    }
}
