package dev.kiln.spark;

import dev.kiln.engine.tensor.TensorData;
import dev.kiln.engine.zoo.ModelZoo;
import org.apache.spark.TaskContext;
import org.apache.spark.api.java.function.MapPartitionsFunction;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.api.java.UDF1;
import org.apache.spark.sql.types.DataTypes;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.io.TempDir;

import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * KilnModel on a multi-JVM cluster: {@code local-cluster[2,1,1024]} starts two executor JVMs from SPARK_HOME (built by
 * the Maven build from the test classpath), loopback only, each with a fake GPU from a discovery script. One session
 * for the class; the test that kills an executor JVM runs last, so the others see both original executors.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class LocalClusterTest {
    private static SparkSession spark;
    @TempDir
    static Path dir;
    private static String mlpUri;

    @BeforeAll
    static void start() throws Exception {
        Path sparkHome = Path.of(System.getenv("SPARK_HOME"));
        Files.createDirectories(sparkHome);
        if (!Files.exists(sparkHome.resolve("RELEASE"))) {
            Files.writeString(sparkHome.resolve("RELEASE"), "Spark jars assembled by Kiln's build for local-cluster tests\n");
        }
        String script = new File(LocalClusterTest.class.getResource("/fake-gpus.sh").toURI()).getAbsolutePath();
        String executorOptions = System.getProperty("kiln.jvm.opens", "") + " -Dkiln.backend.cuda=" + RecordingBackend.class.getName();
        spark = SparkSession.builder()
                .master("local-cluster[2,1,1024]")
                .appName("LocalClusterTest")
                .config("spark.ui.enabled", "false")
                .config("spark.driver.host", "127.0.0.1")
                .config("spark.driver.bindAddress", "127.0.0.1")
                .config("spark.executor.extraClassPath", System.getProperty("kiln.test.classpath"))
                .config("spark.executor.extraJavaOptions", executorOptions)
                .config("spark.executorEnv.OMP_WAIT_POLICY", "PASSIVE")
                .config("spark.executorEnv.OMP_NUM_THREADS", "1")
                .config("spark.worker.resource.gpu.amount", "2")
                .config("spark.worker.resource.gpu.discoveryScript", script)
                .config("spark.executor.resource.gpu.amount", "1")
                .config("spark.task.resource.gpu.amount", "1")
                .config("spark.task.maxFailures", "4")
                .getOrCreate();
        ModelZoo.Entry mlp = ModelZoo.get("seed-mlp");
        mlp.block().loadParameters(SparkTestSupport.reference("mlp", "weights"));
        mlpUri = SparkTestSupport.save(mlp.block(), mlp.signature(), dir.resolve("mlp.kiln"));
    }

    @AfterAll
    static void stop() {
        if (spark != null) {
            spark.stop();
        }
    }

    private static Dataset<Row> rows(int count, int partitions) {
        return spark.range(0, count, 1, partitions)
                .selectExpr("id", "transform(sequence(1, 512), i -> cast(sin(id * 0.37 + i) as float)) AS features");
    }

    /** For each partition after scoring: the executor JVM's name, its model-load count and the GPU ordinals it used. */
    private static final MapPartitionsFunction<Row, String> REPORT = it -> {
        long n = 0;
        while (it.hasNext()) {
            it.next();
            n++;
        }
        String jvm = java.lang.management.ManagementFactory.getRuntimeMXBean().getName();
        return List.of(jvm + "|" + ExecutorModels.loadCount() + "|" + RecordingBackend.ORDINALS + "|" + n + "|" + TaskContext.getPartitionId()).iterator();
    };

    @Test
    @Order(1)
    void eachExecutorJvmLoadsTheModelOnceWhileManyTasksRun() {
        Dataset<Row> scored = new KilnModel().setModelUri(mlpUri).setInputCols("features").setOutputCols("y").setBatchSize(64)
                .transform(rows(4_000, 16));
        List<String> reports = scored.mapPartitions(REPORT, Encoders.STRING()).collectAsList();
        assertThat(reports).hasSize(16);
        Map<String, Set<String>> loadsByJvm = new HashMap<>();
        long total = 0;
        for (String report : reports) {
            String[] parts = report.split("\\|");
            loadsByJvm.computeIfAbsent(parts[0], k -> new HashSet<>()).add(parts[1]);
            total += Long.parseLong(parts[3]);
            assertThat(parts[2]).as("GPU ordinals used in %s", parts[0]).matches("\\[[01](, [01])*\\]");
        }
        assertThat(total).isEqualTo(4_000);
        assertThat(loadsByJvm).as("executor JVMs").hasSize(2);
        for (Map.Entry<String, Set<String>> e : loadsByJvm.entrySet()) {
            assertThat(e.getValue()).as("model loads seen in %s", e.getKey()).containsExactly("1");
        }
    }

    @Test
    @Order(2)
    void aTaskThatFailsOnceIsRetriedAndTheOutputIsCompleteWithoutDuplicates() {
        // The input of partition 3 fails on its first attempt, midway through Kiln's iteration of the partition.
        UDF1<Long, Long> flaky = id -> {
            TaskContext task = TaskContext.get();
            if (task.partitionId() == 3 && task.attemptNumber() == 0 && id % 250 == 200) {
                throw new IllegalStateException("injected failure of the first attempt at id " + id);
            }
            return id;
        };
        spark.udf().register("flaky", flaky, DataTypes.LongType);
        Dataset<Row> input = rows(2_000, 8).selectExpr("flaky(id) AS id", "features");
        List<Row> out = new KilnModel().setModelUri(mlpUri).setInputCols("features").setOutputCols("y").setBatchSize(32)
                .transform(input).select("id", "y").collectAsList();
        assertThat(out).hasSize(2_000);
        Set<Long> ids = new HashSet<>();
        List<Long> duplicates = new ArrayList<>();
        for (Row row : out) {
            if (!ids.add(row.getLong(0))) {
                duplicates.add(row.getLong(0));
            }
            assertThat(row.getList(1)).hasSize(2);
        }
        assertThat(duplicates).isEmpty();
        assertThat(ids).hasSize(2_000);
    }

    @Test
    @Order(3)
    void anExecutorJvmKilledMidJobIsReplacedAndTheWrittenOutputIsCompleteAndCorrect() throws Exception {
        // The first attempt of partition 5 halts its executor JVM (no shutdown hooks, like kill -9) after Kiln has
        // already scored part of the partition; the tasks of that JVM are lost and rerun elsewhere.
        UDF1<Long, Long> killer = id -> {
            TaskContext task = TaskContext.get();
            if (task.partitionId() == 5 && task.attemptNumber() == 0 && id % 250 == 100) {
                Runtime.getRuntime().halt(137);
            }
            return id;
        };
        UDF1<Long, Integer> attempt = id -> TaskContext.get().attemptNumber();
        spark.udf().register("kill_executor_once", killer, DataTypes.LongType);
        spark.udf().register("task_attempt", attempt, DataTypes.IntegerType);
        Dataset<Row> input = rows(2_000, 8).selectExpr("kill_executor_once(id) AS id", "features");
        Path out = dir.resolve("scored-after-kill.parquet");
        new KilnModel().setModelUri(mlpUri).setInputCols("features").setOutputCols("y").setBatchSize(32)
                .transform(input).selectExpr("id", "y", "task_attempt(id) AS attempt").write().parquet(out.toString());

        List<Row> written = spark.read().parquet(out.toString()).collectAsList();
        assertThat(written).hasSize(2_000);
        Map<String, TensorData> weights = SparkTestSupport.reference("mlp", "weights");
        Set<Long> ids = new HashSet<>();
        for (Row row : written) {
            long id = row.getLong(0);
            assertThat(ids.add(id)).as("id %d written once", id).isTrue();
            double[] expected = referenceMlp(weights, id);
            List<Float> y = row.getList(1);
            assertThat(y).hasSize(2);
            for (int j = 0; j < 2; j++) {
                assertThat((double) y.get(j)).as("y[%d] of id %d", j, id)
                        .isCloseTo(expected[j], org.assertj.core.data.Offset.offset(1e-4 * Math.max(1, Math.abs(expected[j]))));
            }
            if (id >= 1_250 && id < 1_500) {
                assertThat(row.getInt(2)).as("attempt that wrote id %d of the killed partition", id).isPositive();
            }
        }
        assertThat(ids).hasSize(2_000);
    }

    /**
     * The seed MLP in double precision straight from PyTorch's state dict ({@code x W^T + b}, relu, twice, then the
     * output layer) on the features {@link #rows} generates: the independent reference for the scored values.
     */
    private static double[] referenceMlp(Map<String, TensorData> weights, long id) {
        double[] x = new double[512];
        for (int i = 0; i < 512; i++) {
            x[i] = (float) Math.sin(id * 0.37 + (i + 1));
        }
        double[] h1 = linear(weights, "0", x, true);
        double[] h2 = linear(weights, "2", h1, true);
        return linear(weights, "4", h2, false);
    }

    private static double[] linear(Map<String, TensorData> weights, String layer, double[] x, boolean relu) {
        float[] w = weights.get(layer + ".weight").toFloatArray();
        float[] b = weights.get(layer + ".bias").toFloatArray();
        double[] y = new double[b.length];
        for (int o = 0; o < b.length; o++) {
            double sum = b[o];
            for (int i = 0; i < x.length; i++) {
                sum += (double) w[o * x.length + i] * x[i];
            }
            y[o] = relu ? Math.max(0, sum) : sum;
        }
        return y;
    }
}
