package dev.kiln.spark;

import dev.kiln.engine.KilnException;
import dev.kiln.engine.ir.Signature;
import dev.kiln.engine.nn.Dense;
import dev.kiln.engine.nn.Sequential;
import dev.kiln.engine.ops.Activation;
import dev.kiln.engine.tensor.Shape;
import dev.kiln.engine.tensor.Tensor;
import dev.kiln.engine.tensor.TensorData;
import dev.kiln.engine.zoo.ModelZoo;
import org.apache.spark.ml.Pipeline;
import org.apache.spark.ml.PipelineModel;
import org.apache.spark.ml.PipelineStage;
import org.apache.spark.ml.linalg.Vectors;
import org.apache.spark.ml.linalg.VectorUDT;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

/** KilnModel on a shared local[2] session: values against PyTorch, by hand and against eager; bad rows; schema checks. */
class KilnModelTest {
    private static SparkSession spark;
    @TempDir
    static Path dir;
    private static String mlpUri;
    private static String handUri;

    private static final StructType FEATURES = new StructType()
            .add("id", DataTypes.LongType, false)
            .add("features", DataTypes.createArrayType(DataTypes.FloatType, true), true);

    @BeforeAll
    static void start() {
        spark = SparkTestSupport.localSession("KilnModelTest");
        ModelZoo.Entry mlp = ModelZoo.get("seed-mlp");
        mlp.block().loadParameters(SparkTestSupport.reference("mlp", "weights"));
        mlpUri = SparkTestSupport.save(mlp.block(), mlp.signature(), dir.resolve("mlp.kiln"));
        handUri = SparkTestSupport.save(handModel(), Signature.builder().input("x", Shape.batched(2)).output("y").build(), dir.resolve("hand.kiln"));
    }

    @AfterAll
    static void stop() {
        ExecutorModels.closeAll();
        if (spark != null) {
            spark.stop();
        }
    }

    @AfterEach
    void noArrowMemoryLeft() {
        assertThat(PartitionScorer.allocatedBytes()).as("Arrow bytes still allocated after the job").isZero();
    }

    /** y = relu(x W^T + b) with W = [[1, 2], [-1, 0.5]], b = [0.5, -1]: worked out by hand below. */
    static Sequential handModel() {
        Sequential net = new Sequential().add(new Dense(2, Activation.RELU, true, 2));
        net.loadParameters(Map.of(
                "0.weight", TensorData.ofFloats(new long[] {2, 2}, new float[] {1, 2, -1, 0.5f}),
                "0.bias", TensorData.ofFloats(new long[] {2}, new float[] {0.5f, -1})));
        return net;
    }

    private static Dataset<Row> featureRows(List<float[]> rows, int partitions) {
        List<Row> data = new ArrayList<>();
        for (int i = 0; i < rows.size(); i++) {
            float[] r = rows.get(i);
            List<Float> boxed = new ArrayList<>();
            if (r != null) {
                for (float v : r) {
                    boxed.add(v);
                }
            }
            data.add(RowFactory.create((long) i, r == null ? null : boxed));
        }
        return spark.createDataFrame(data, FEATURES).repartition(partitions).sortWithinPartitions("id");
    }

    private static float[] floats(Row row, String column) {
        List<Float> list = row.getList(row.fieldIndex(column));
        float[] out = new float[list.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = list.get(i);
        }
        return out;
    }

    @Test
    void reproducesPyTorchOnTheReferenceInputs() {
        float[] x = SparkTestSupport.reference("mlp", "inputs").get("x").toFloatArray();
        float[] expected = SparkTestSupport.reference("mlp", "expected").get("y").toFloatArray();
        List<float[]> rows = new ArrayList<>();
        for (int r = 0; r < 8; r++) {
            rows.add(java.util.Arrays.copyOfRange(x, r * 512, (r + 1) * 512));
        }
        KilnModel model = new KilnModel().setModelUri(mlpUri).setInputCols("features").setOutputCols("y").setBatchSize(3);
        List<Row> out = new ArrayList<>(model.transform(featureRows(rows, 2)).collectAsList());
        out.sort(java.util.Comparator.comparingLong(r -> r.getLong(0)));
        assertThat(out).hasSize(8);
        for (Row row : out) {
            int id = (int) row.getLong(0);
            float[] y = floats(row, "y");
            for (int j = 0; j < 2; j++) {
                float e = expected[id * 2 + j];
                assertThat(y[j]).as("row %d output %d", id, j).isCloseTo(e, within((float) (1e-6 + 1e-5 * Math.abs(e))));
            }
            assertThat(floats(row, "features")).containsExactly(rows.get(id));
        }
        assertThat(model.lastMetrics().rows()).isEqualTo(8);
        assertThat(model.lastMetrics().batches()).isGreaterThanOrEqualTo(4);
    }

    /**
     * The reference CNN (PyTorch's weights) scored in Spark tasks, where its convolution/pool/average layers run as one
     * oneDNN chain reading the Arrow batch in place: 40 rows (the four reference images over and over) in two
     * partitions, so each task scores one batch of 20 rows, which the chain runs as chunks of 16 and 4 (checked once
     * with a probe in the kernel), against PyTorch's own probabilities.
     */
    @Test
    void theReferenceCnnReproducesPyTorchInsideTasks() {
        ModelZoo.Entry cnn = ModelZoo.get("small-cnn");
        cnn.block().loadParameters(SparkTestSupport.reference("cnn", "weights"));
        String uri = SparkTestSupport.save(cnn.block(), cnn.signature(), dir.resolve("cnn.kiln"));
        float[] images = SparkTestSupport.reference("cnn", "inputs").get("image").toFloatArray();
        float[] expected = SparkTestSupport.reference("cnn", "expected").get("probabilities").toFloatArray();
        List<float[]> rows = new ArrayList<>();
        for (int r = 0; r < 40; r++) {
            rows.add(java.util.Arrays.copyOfRange(images, (r % 4) * 784, (r % 4 + 1) * 784));
        }
        KilnModel model = new KilnModel().setModelUri(uri).setInputCols("features").setOutputCols("p").setBatchSize(37);
        List<Row> out = new ArrayList<>(model.transform(featureRows(rows, 2)).collectAsList());
        assertThat(out).hasSize(40);
        for (Row row : out) {
            int id = (int) row.getLong(0);
            float[] p = floats(row, "p");
            for (int j = 0; j < 10; j++) {
                float e = expected[(id % 4) * 10 + j];
                assertThat(p[j]).as("row %d class %d", id, j).isCloseTo(e, within((float) (1e-6 + 1e-4 * Math.abs(e))));
            }
        }
    }

    /** {@code n} rows of 512 standard-normal floats. */
    private static List<float[]> gaussianRows(int n, long seed) {
        Random random = new Random(seed);
        List<float[]> rows = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            float[] r = new float[512];
            for (int j = 0; j < 512; j++) {
                r[j] = (float) random.nextGaussian();
            }
            rows.add(r);
        }
        return rows;
    }

    /** The seed MLP with PyTorch's weights on {@code rows}, run by the eager ND4J engine (the independent reference). */
    private static float[] eagerSeedMlp(List<float[]> rows) {
        float[] all = new float[rows.size() * 512];
        for (int i = 0; i < rows.size(); i++) {
            System.arraycopy(rows.get(i), 0, all, i * 512, 512);
        }
        Sequential eager = ModelZoo.seedMlp();
        eager.loadParameters(SparkTestSupport.reference("mlp", "weights"));
        return eager.forward(Tensor.of(new long[] {rows.size(), 512}, all)).toFloatArray();
    }

    /** The row's y (2 values) against the eager outputs of its id. */
    private static void assertMatchesEager(Row row, float[] expected) {
        int id = (int) row.getLong(0);
        float[] y = floats(row, "y");
        assertThat(y[0]).isCloseTo(expected[id * 2], within(1e-4f + 1e-4f * Math.abs(expected[id * 2])));
        assertThat(y[1]).isCloseTo(expected[id * 2 + 1], within(1e-4f + 1e-4f * Math.abs(expected[id * 2 + 1])));
    }

    @Test
    void manyRowsAcrossPartitionsMatchEagerAndKeepOrder() {
        int n = 2_000;
        List<float[]> rows = gaussianRows(n, 3);
        float[] expected = eagerSeedMlp(rows);

        Dataset<Row> scored = new KilnModel().setModelUri(mlpUri).setInputCols("features").setOutputCols("y").setBatchSize(128)
                .transform(featureRows(rows, 3));
        List<Row> out = scored.collectAsList();
        assertThat(out).hasSize(n);
        long previousId = -1;
        int partitionStart = 0;
        for (Row row : out) {
            int id = (int) row.getLong(0);
            assertMatchesEager(row, expected);
            if (id < previousId) {
                partitionStart++;
            }
            previousId = id;
        }
        assertThat(partitionStart).as("order within each partition is kept").isLessThan(3);
        assertThat(out.stream().map(r -> r.getLong(0)).distinct().count()).isEqualTo(n);
    }

    @Test
    void onAGpuDeviceAllTasksFeedOneDeviceQueue() {
        // The stand-in GPU backend computes on the CPU; the path is the GPU one: one device executor per JVM behind a
        // queue, every task's batches staged through it. Expected values: the eager ND4J engine, as above.
        Backends.register("cuda", RecordingBackend::new);
        try {
            int n = 1_500;
            List<float[]> rows = gaussianRows(n, 5);
            float[] expected = eagerSeedMlp(rows);

            List<Row> out = new KilnModel().setModelUri(mlpUri).setInputCols("features").setOutputCols("y").setBatchSize(100).setDevice("cuda:0")
                    .transform(featureRows(rows, 4)).collectAsList();
            assertThat(out).hasSize(n);
            for (Row row : out) {
                assertMatchesEager(row, expected);
            }
            assertThat(out.stream().map(r -> r.getLong(0)).distinct().count()).isEqualTo(n);
            assertThat(Thread.getAllStackTraces().keySet().stream().filter(t -> t.getName().equals("kiln-device-cuda:0")).count())
                    .as("one device queue thread for cuda:0").isEqualTo(1);
        } finally {
            Backends.unregister("cuda");
            ExecutorModels.closeAll();
        }
        assertThat(Thread.getAllStackTraces().keySet().stream().filter(t -> t.getName().startsWith("kiln-device-")).count())
                .as("queue threads end when the models close").isZero();
    }

    @Test
    void aTaskWithTwoGpusSplitsEveryBatchAcrossBothDeviceQueues() {
        Backends.register("cuda", RecordingBackend::new);
        RecordingBackend.ORDINALS.clear();
        try {
            int n = 301;
            List<float[]> rows = gaussianRows(n, 9);
            float[] expected = eagerSeedMlp(rows);
            ModelHandle handle = ModelHandle.create(spark, mlpUri, Long.MAX_VALUE);
            try (ExecutorModels.Lease lease = ExecutorModels.acquire(handle, List.of(Device.cuda(0), Device.cuda(1)), 128)) {
                dev.kiln.engine.exec.Executor executor = lease.executor();
                assertThat(executor).isInstanceOf(dev.kiln.engine.exec.SplitExecutor.class);
                float[] out = new float[n * 2];
                for (int start = 0; start < n; start += 128) {
                    int batch = Math.min(128, n - start);
                    float[] in = new float[batch * 512];
                    for (int r = 0; r < batch; r++) {
                        System.arraycopy(rows.get(start + r), 0, in, r * 512, 512);
                    }
                    executor.setInput(0, in, 0, batch);
                    executor.run(batch);
                    executor.getOutput(0, out, start * 2);
                }
                for (int i = 0; i < out.length; i++) {
                    assertThat(out[i]).as("output %d", i).isCloseTo(expected[i], within(1e-4f + 1e-4f * Math.abs(expected[i])));
                }
            }
            assertThat(RecordingBackend.ORDINALS).as("backends created").containsExactlyInAnyOrder(0, 1);
            assertThat(Thread.getAllStackTraces().keySet().stream().map(Thread::getName).filter(t -> t.startsWith("kiln-device-cuda:")))
                    .as("one queue of two workers per GPU").containsExactlyInAnyOrder("kiln-device-cuda:0", "kiln-device-cuda:0#2", "kiln-device-cuda:1",
                            "kiln-device-cuda:1#2");
        } finally {
            Backends.unregister("cuda");
            ExecutorModels.closeAll();
        }
        assertThat(Thread.getAllStackTraces().keySet().stream().filter(t -> t.getName().startsWith("kiln-device-")).count()).isZero();
    }

    @Test
    void acceptsDoubleArraysVectorsAndNumericColumns() {
        // Rows x = [3, 1] -> [5.5, 0] and [-2, 4] -> [6.5, 3], worked out by hand for the hand model.
        StructType schema = new StructType()
                .add("d", DataTypes.createArrayType(DataTypes.DoubleType))
                .add("v", new VectorUDT())
                .add("a", DataTypes.DoubleType)
                .add("b", DataTypes.IntegerType);
        List<Row> data = List.of(
                RowFactory.create(List.of(3.0, 1.0), Vectors.dense(3, 1), 3.0, 1),
                RowFactory.create(List.of(-2.0, 4.0), Vectors.sparse(2, new int[] {0, 1}, new double[] {-2, 4}), -2.0, 4));
        Dataset<Row> frame = spark.createDataFrame(data, schema).coalesce(1);
        for (String[] cols : new String[][] {{"d"}, {"v"}, {"a", "b"}}) {
            List<Row> out = new KilnModel().setModelUri(handUri).setInputCols(cols).setOutputCols("y").transform(frame).collectAsList();
            assertThat(floats(out.get(0), "y")).as("columns %s", String.join(",", cols)).containsExactly(5.5f, 0f);
            assertThat(floats(out.get(1), "y")).as("columns %s", String.join(",", cols)).containsExactly(6.5f, 3f);
        }
    }

    @Test
    void integerIdColumnsFeedAnEmbedding() {
        // Embedding rows [1, 2], [3, 4], [5, 6]; ids [2, 0] -> [5, 6, 1, 2], [1, 1] -> [3, 4, 3, 4]. An id beyond 2^24
        // has no exact float32 form: its row gets nulls and a reason, the others are scored.
        dev.kiln.engine.nn.Embedding embedding = new dev.kiln.engine.nn.Embedding(3, 2);
        embedding.loadParameters(java.util.Map.of("weight", dev.kiln.engine.tensor.TensorData.ofFloats(new long[] {3, 2}, new float[] {1, 2, 3, 4, 5, 6})));
        String uri = SparkTestSupport.save(embedding, Signature.builder().input("ids", Shape.batched(2)).output("y").build(), dir.resolve("embedding.kiln"));
        StructType schema = new StructType().add("i", DataTypes.createArrayType(DataTypes.IntegerType)).add("l", DataTypes.createArrayType(DataTypes.LongType));
        Dataset<Row> frame = spark.createDataFrame(List.of(RowFactory.create(List.of(2, 0), List.of(2L, 0L)), RowFactory.create(List.of(1, 1), List.of(1L, 1L)),
                RowFactory.create(List.of(0, 0), List.of(0L, (1L << 24) + 1))), schema).coalesce(1);
        for (String column : new String[] {"i", "l"}) {
            List<Row> out = new KilnModel().setModelUri(uri).setInputCols(column).setOutputCols("y").setOnError("null").transform(frame).collectAsList();
            assertThat(floats(out.get(0), "y")).as(column).containsExactly(5, 6, 1, 2);
            assertThat(floats(out.get(1), "y")).as(column).containsExactly(3, 4, 3, 4);
            if (column.equals("l")) {
                assertThat(out.get(2).isNullAt(out.get(2).fieldIndex("y"))).isTrue();
                assertThat(out.get(2).getString(out.get(2).length() - 1)).contains("value 16777217 at index 1 is beyond 2^24");
            } else {
                assertThat(floats(out.get(2), "y")).containsExactly(1, 2, 1, 2);
            }
        }
    }

    @Test
    void argmaxAndSoftmaxPostProcessing() {
        Dataset<Row> frame = featureRows(List.of(new float[] {3, 1}, new float[] {-2, 4}), 1);
        List<Row> argmax = new KilnModel().setModelUri(handUri).setInputCols("features").setOutputCols("label").setOutputTransform("argmax")
                .transform(frame).orderBy("id").collectAsList();
        assertThat(argmax.get(0).getInt(2)).isEqualTo(0);
        assertThat(argmax.get(1).getInt(2)).isEqualTo(0);
        List<Row> softmax = new KilnModel().setModelUri(handUri).setInputCols("features").setOutputCols("p").setOutputTransform("softmax")
                .transform(frame).orderBy("id").collectAsList();
        // softmax([6.5, 3]) = [1, e^-3.5] / (1 + e^-3.5)
        float[] p = floats(softmax.get(1), "p");
        double z = 1 + Math.exp(-3.5);
        assertThat((double) p[0]).isCloseTo(1 / z, within(1e-6));
        assertThat((double) p[1]).isCloseTo(Math.exp(-3.5) / z, within(1e-6));
    }

    @Test
    void aScalarOutputBecomesAFloatColumn() {
        Sequential one = new Sequential().add(new Dense(1, Activation.NONE, true, 2));
        one.loadParameters(Map.of("0.weight", TensorData.ofFloats(new long[] {1, 2}, new float[] {2, -1}),
                "0.bias", TensorData.ofFloats(new long[] {1}, new float[] {0.25f})));
        String uri = SparkTestSupport.save(one, Signature.builder().input("x", Shape.batched(2)).build(), dir.resolve("one.kiln"));
        Dataset<Row> out = new KilnModel().setModelUri(uri).setInputCols("features").setOutputCols("score")
                .transform(featureRows(List.of(new float[] {3, 1}), 1));
        assertThat(out.schema().apply("score").dataType()).isEqualTo(DataTypes.FloatType);
        assertThat(out.collectAsList().get(0).getFloat(2)).isEqualTo(5.25f);
    }

    @Test
    void badRowsFailTheJobNamingColumnAndRow() {
        List<float[]> rows = List.of(new float[] {1, 2}, new float[] {1, 2, 3}, new float[] {1, 2});
        KilnModel model = new KilnModel().setModelUri(handUri).setInputCols("features");
        assertThatThrownBy(() -> model.transform(featureRows(rows, 1)).collectAsList())
                .hasStackTraceContaining("Column 'features' row 1 of partition 0: expected array<float> of length 2, got length 3");
        KilnModel keyed = new KilnModel().setModelUri(handUri).setInputCols("features").setKeyCol("id");
        List<float[]> nan = List.of(new float[] {1, 2}, new float[] {Float.NaN, 2});
        assertThatThrownBy(() -> keyed.transform(featureRows(nan, 1)).collectAsList())
                .hasStackTraceContaining("Column 'features' row with id=1: value at index 0 is NaN");
    }

    @Test
    void badRowsGetNullPredictionsAndAReasonWithOnErrorNull() {
        List<float[]> rows = new ArrayList<>();
        rows.add(new float[] {3, 1});
        rows.add(null);
        rows.add(new float[] {1});
        rows.add(new float[] {Float.POSITIVE_INFINITY, 0});
        rows.add(new float[] {-2, 4});
        List<Row> out = new KilnModel().setModelUri(handUri).setInputCols("features").setOutputCols("y").setOnError("null").setBatchSize(2)
                .transform(featureRows(rows, 2)).orderBy("id").collectAsList();
        assertThat(out).hasSize(5);
        assertThat(floats(out.get(0), "y")).containsExactly(5.5f, 0f);
        assertThat(out.get(0).isNullAt(3)).isTrue();
        assertThat(out.get(1).isNullAt(2)).isTrue();
        assertThat(out.get(1).getString(3)).contains("got null");
        assertThat(out.get(2).getString(3)).contains("got length 1");
        assertThat(out.get(3).getString(3)).contains("value at index 0 is Infinity");
        assertThat(floats(out.get(4), "y")).containsExactly(6.5f, 3f);
    }

    @Test
    void nonFiniteRowsInsideABatchAreTakenOutAndTheRestStayAligned() {
        List<float[]> rows = List.of(new float[] {3, 1}, new float[] {Float.NaN, 0}, new float[] {0, 0}, new float[] {1, Float.NEGATIVE_INFINITY},
                new float[] {-2, 4});
        List<Row> out = new KilnModel().setModelUri(handUri).setInputCols("features").setOutputCols("y").setOnError("null").setBatchSize(8)
                .transform(featureRows(rows, 1)).collectAsList();
        assertThat(floats(out.get(0), "y")).containsExactly(5.5f, 0f);
        assertThat(out.get(1).isNullAt(2)).isTrue();
        assertThat(out.get(1).getString(3)).isEqualTo("Column 'features' row 1 of partition 0: value at index 0 is NaN");
        assertThat(floats(out.get(2), "y")).containsExactly(0.5f, 0f);
        assertThat(out.get(3).getString(3)).isEqualTo("Column 'features' row 3 of partition 0: value at index 1 is -Infinity");
        assertThat(floats(out.get(4), "y")).containsExactly(6.5f, 3f);
    }

    /**
     * Output rows read their float features back from the Arrow batch rather than storing them twice (OutputRows,
     * "deferred columns"). A two-input model y = x + 2 z over a float array, a string and a double array in between and
     * after: every row's columns come out as they went in, the predictions by hand, and a row the batch screen takes out
     * for a NaN in the double column keeps its float features (copied whole before its batch slot was reused).
     */
    @Test
    void everyInputColumnComesOutAsItWentInWithTheFeaturesReadBackFromTheBatch() {
        dev.kiln.engine.nn.Block twoInputs = new dev.kiln.engine.nn.Block() {
            @Override
            protected List<Tensor> forwardInternal(List<Tensor> inputs) {
                return List.of(inputs.get(0).add(inputs.get(1).mul(Tensor.of(new long[] {1}, new float[] {2}))));
            }
        };
        String uri = SparkTestSupport.save(twoInputs, Signature.builder().input("x", Shape.batched(3)).input("z", Shape.batched(3)).output("y").build(),
                dir.resolve("two-inputs.kiln"));
        StructType schema = new StructType().add("id", DataTypes.LongType, false)
                .add("features", DataTypes.createArrayType(DataTypes.FloatType, false), true)
                .add("tag", DataTypes.StringType, true)
                .add("z", DataTypes.createArrayType(DataTypes.DoubleType, false), true);
        List<Row> data = new ArrayList<>();
        int n = 23;
        for (int i = 0; i < n; i++) {
            double bad = i % 7 == 3 ? Double.NaN : 0.25;
            data.add(RowFactory.create((long) i, List.of(i + 0.5f, -i - 0.25f, 1f / (i + 1)), "row-" + "x".repeat(i % 5) + i,
                    List.of(1.0 * i, bad, -2.0)));
        }
        List<Row> out = new KilnModel().setModelUri(uri).setInputCols("features", "z").setOutputCols("y").setOnError("null").setBatchSize(5)
                .transform(spark.createDataFrame(data, schema).repartition(2).sortWithinPartitions("id")).orderBy("id").collectAsList();
        assertThat(out).hasSize(n);
        for (int i = 0; i < n; i++) {
            Row row = out.get(i);
            assertThat(row.getLong(0)).isEqualTo(i);
            assertThat(floats(row, "features")).as("row %d", i).containsExactly(i + 0.5f, -i - 0.25f, 1f / (i + 1));
            assertThat(row.getString(2)).isEqualTo("row-" + "x".repeat(i % 5) + i);
            assertThat(row.getList(3)).hasSize(3);
            if (i % 7 == 3) {
                assertThat(row.isNullAt(4)).as("row %d", i).isTrue();
                assertThat(row.getString(5)).as("row %d", i).contains("Column 'z'").contains("value at index 1 is NaN");
            } else {
                assertThat(floats(row, "y")).as("row %d", i).containsExactly(i + 0.5f + 2f * i, -i - 0.25f + 0.5f, 1f / (i + 1) - 4f);
                assertThat(row.isNullAt(5)).isTrue();
            }
        }
    }

    /**
     * Columns map to model inputs by name and model outputs to columns by name: a two-input, two-output model
     * (sum = x + 2 z, diff = x - z) given its inputs in the opposite order to its signature, with only its second
     * output kept; predictions by hand. Mistakes in the mapping are refused before any job, naming what the model has.
     */
    @Test
    void inputsAndOutputsMapByName() {
        dev.kiln.engine.nn.Block twoByTwo = new dev.kiln.engine.nn.Block() {
            @Override
            protected List<Tensor> forwardInternal(List<Tensor> inputs) {
                return List.of(inputs.get(0).add(inputs.get(1).mul(2f)), inputs.get(0).sub(inputs.get(1)));
            }
        };
        String uri = SparkTestSupport.save(twoByTwo,
                Signature.builder().input("x", Shape.batched(2)).input("z", Shape.batched(2)).output("sum").output("diff").build(), dir.resolve("two-by-two.kiln"));
        StructType schema = new StructType().add("id", DataTypes.LongType, false)
                .add("a", DataTypes.createArrayType(DataTypes.FloatType, false), false)
                .add("b", DataTypes.createArrayType(DataTypes.FloatType, false), false)
                .add("b0", DataTypes.DoubleType, false).add("b1", DataTypes.FloatType, false);
        List<Row> data = new ArrayList<>();
        for (int i = 0; i < 9; i++) {
            data.add(RowFactory.create((long) i, List.of(i * 1f, 10f), List.of(0.5f, -1f * i), 0.5, -1f * i));
        }
        Dataset<Row> frame = spark.createDataFrame(data, schema).coalesce(1);
        // z from column a, x from column b: the reverse of the signature's order.
        List<Row> out = new KilnModel().setModelUri(uri).setInputCols("z=a", "x=b").setOutputCols("diff=d").setBatchSize(4)
                .transform(frame).orderBy("id").collectAsList();
        assertThat(out.get(0).schema().fieldNames()).containsExactly("id", "a", "b", "b0", "b1", "d");
        for (int i = 0; i < 9; i++) {
            assertThat(floats(out.get(i), "d")).as("row %d", i).containsExactly(0.5f - i, -1f * i - 10f);
        }
        // x assembled from two numeric columns (b0, b1) by naming it twice; both outputs by name, in another order.
        List<Row> both = new KilnModel().setModelUri(uri).setInputCols("x=b0", "z=a", "x=b1").setOutputCols("diff=d", "sum=s")
                .transform(frame).orderBy("id").collectAsList();
        for (int i = 0; i < 9; i++) {
            assertThat(floats(both.get(i), "d")).as("row %d", i).containsExactly(0.5f - i, -1f * i - 10f);
            assertThat(floats(both.get(i), "s")).as("row %d", i).containsExactly(0.5f + 2f * i, -1f * i + 20f);
        }
        StructType s = frame.schema();
        assertThatThrownBy(() -> new KilnModel().setModelUri(uri).setInputCols("x=a", "w=b").transformSchema(s))
                .hasMessage("inputCols [x=a, w=b] mix 'input=column' entries with plain column names [w=b]: use one form (the model's inputs are [x, z])");
        assertThatThrownBy(() -> new KilnModel().setModelUri(uri).setInputCols("x=a").transformSchema(s))
                .hasMessageContaining("Model input 'z' [batch, 2] has no column").hasMessageContaining("'z=COLUMN'");
        assertThatThrownBy(() -> new KilnModel().setModelUri(uri).setInputCols("x=a", "b").transformSchema(s))
                .hasMessageContaining("mix 'input=column' entries with plain column names");
        assertThatThrownBy(() -> new KilnModel().setModelUri(uri).setInputCols("a", "b").setOutputCols("sum=p", "sum=q").transformSchema(s))
                .hasMessage("Model output 'sum' is mapped twice in outputCols [sum=p, sum=q]");
        // An entry whose part before '=' names no model output is a column name: a column may be called "logits=p".
        assertThat(new KilnModel().setModelUri(uri).setInputCols("a", "b").setOutputCols("logits=p").transformSchema(s).fieldNames())
                .containsExactly("id", "a", "b", "b0", "b1", "logits=p");
        assertThat(new KilnModel().setModelUri(uri).setInputCols("a", "b").setOutputCols("sum=sum=1").transformSchema(s).fieldNames())
                .as("OUTPUT=NAME spells a name with '=' for a model output").endsWith("sum=1");
    }

    /**
     * The per-job summary listener holds each transform's metrics weakly: a session that scores in a loop does not
     * keep every transform's accumulators alive. When its application ends, the listener lets go of everything.
     */
    @Test
    void theJobListenerForgetsTransformsNobodyHolds() throws InterruptedException {
        KilnJobListener listener = KilnJobListener.listener(spark.sparkContext());
        List<KilnMetrics> held = new ArrayList<>();
        for (int i = 0; i < 50; i++) {
            held.add(new KilnMetrics(spark.sparkContext(), "forget-" + i));
            KilnJobListener.watch(spark.sparkContext(), held.get(i));
        }
        assertThat(listener.watchedCount()).isGreaterThanOrEqualTo(50);
        held.clear();
        for (int tries = 0; tries < 100 && listener.watchedCount() >= 50; tries++) {
            System.gc();
            Thread.sleep(20);
        }
        assertThat(listener.watchedCount()).as("metrics of transforms nobody refers to").isLessThan(50);

        KilnMetrics kept = new KilnMetrics(spark.sparkContext(), "kept");
        KilnJobListener.watch(spark.sparkContext(), kept);
        listener.onApplicationEnd(new org.apache.spark.scheduler.SparkListenerApplicationEnd(0L, scala.Option.empty()));
        assertThat(KilnJobListener.registered(spark.sparkContext())).isFalse();
        assertThat(listener.watchedCount()).isZero();
        KilnJobListener.watch(spark.sparkContext(), kept);
        assertThat(KilnJobListener.registered(spark.sparkContext())).as("a later transform registers a new listener").isTrue();
    }

    /**
     * One line per transform whose rows moved during the job, not one per watched transform per job: a session that
     * keeps several scored DataFrames used to log every one of them again at each job end.
     */
    @Test
    void theJobListenerLogsATransformOnlyWhenItsRowsMoved() {
        KilnJobListener listener = KilnJobListener.listener(spark.sparkContext());
        KilnMetrics a = new KilnMetrics(spark.sparkContext(), "moved-a");
        KilnMetrics b = new KilnMetrics(spark.sparkContext(), "moved-b");
        KilnJobListener.watch(spark.sparkContext(), a);
        KilnJobListener.watch(spark.sparkContext(), b);
        a.add(3, 1, 1_000_000_000L, 3_000_000_000L);
        assertThat(listener.summaries(7)).containsExactly(
                "Job 7: Kiln scored 3 rows in 1 batches (1 refused): converting 1.00 s (25%), computing 3.00 s (75%), task time summed");
        assertThat(listener.summaries(8)).as("nothing moved since job 7").isEmpty();
        b.add(2, 0, 500_000_000L, 1_500_000_000L);
        assertThat(listener.summaries(9)).containsExactly(
                "Job 9: Kiln scored 2 rows in 1 batches (0 refused): converting 0.50 s (25%), computing 1.50 s (75%), task time summed");
        assertThat(listener.summaries(10)).isEmpty();
    }

    /**
     * The SQL function refuses what KilnModel refuses: a NaN element and a double beyond float range fail the query
     * naming the function, element and value. Its broadcast threshold comes from the session conf.
     */
    @Test
    void theSqlFunctionRefusesNonFiniteElementsAndTakesItsBroadcastThresholdFromTheSession() {
        KilnUdf.register(spark, "hand_checked", handUri);
        featureRows(List.of(new float[] {3, 1}, new float[] {Float.NaN, 4}), 1).createOrReplaceTempView("t_nan");
        assertThatThrownBy(() -> spark.sql("SELECT hand_checked(features) FROM t_nan").collectAsList())
                .hasStackTraceContaining("SQL function 'hand_checked': element 0 of the argument is NaN");
        assertThatThrownBy(() -> spark.sql("SELECT hand_checked(array(1D, 1e300D))").collectAsList())
                .hasStackTraceContaining("SQL function 'hand_checked': element 1 of the argument is 1.0E300, beyond float range");
        assertThat(floats(spark.sql("SELECT hand_checked(array(3D, 1D)) AS y").collectAsList().get(0), "y")).containsExactly(5.5f, 0f);

        assertThat(KilnUdf.register(spark, "hand_broadcast", handUri).isBroadcast()).isTrue();
        spark.conf().set(KilnUdf.BROADCAST_THRESHOLD, "0");
        try {
            assertThat(KilnUdf.register(spark, "hand_stored", handUri).isBroadcast()).as("threshold 0: read from storage").isFalse();
            spark.conf().set(KilnUdf.BROADCAST_THRESHOLD, "lots");
            assertThatThrownBy(() -> KilnUdf.register(spark, "hand_bad", handUri))
                    .hasMessage("spark.kiln.broadcastThreshold must be a number of bytes, got 'lots'");
        } finally {
            spark.conf().unset(KilnUdf.BROADCAST_THRESHOLD);
        }
    }

    /**
     * The public-API path's scorer reads rows through their getters and hands out plain-valued rows
     * ({@link GenericRows}): no UnsafeRow is built, so it does not depend on Spark's row layout. Fed GenericInternalRows
     * directly (a float array, a null, a NaN, a string column after them), it returns GenericInternalRows with the input
     * values, predictions by hand and the reasons, in order.
     */
    @Test
    void thePublicPathScorerBuildsNoUnsafeRows() {
        StructType in = new StructType().add("features", DataTypes.createArrayType(DataTypes.FloatType, true), true).add("tag", DataTypes.StringType, true);
        StructType out = in.add("y", DataTypes.createArrayType(DataTypes.FloatType, false), true).add("kiln_error", DataTypes.StringType, true);
        ModelHandle handle = ModelHandle.create(spark, handUri, 1 << 20);
        ScoringPlan plan = new ScoringPlan(handle, List.of(new InputAdapter.FloatArrayColumn(0, "features", 2)),
                List.of(new OutputColumn("y", 0, 2, OutputColumn.Transform.NONE)), 2, "cpu", false, "", -1, null,
                new KilnMetrics(spark.sparkContext(), "generic"), in, out);
        float[][] features = {{3, 1}, null, {Float.NaN, 1}, {-2, 4}, {0, 0}};
        List<org.apache.spark.sql.catalyst.InternalRow> rows = new ArrayList<>();
        for (int i = 0; i < features.length; i++) {
            Object array = features[i] == null ? null : new org.apache.spark.sql.catalyst.util.GenericArrayData(new Object[] {features[i][0], features[i][1]});
            rows.add(new org.apache.spark.sql.catalyst.expressions.GenericInternalRow(new Object[] {array,
                    org.apache.spark.unsafe.types.UTF8String.fromString("t" + i)}));
        }
        List<org.apache.spark.sql.catalyst.InternalRow> scored = new ArrayList<>();
        try (PartitionScorer scorer = new PartitionScorer(plan, rows.iterator(), null, true)) {
            scorer.forEachRemaining(scored::add);
        }
        assertThat(scored).hasSize(5).allSatisfy(r -> assertThat(r).isInstanceOf(org.apache.spark.sql.catalyst.expressions.GenericInternalRow.class));
        for (int i = 0; i < 5; i++) {
            assertThat(scored.get(i).getUTF8String(1).toString()).isEqualTo("t" + i);
        }
        assertThat(scored.get(0).getArray(2).toFloatArray()).containsExactly(byHand(3, 1));
        assertThat(scored.get(1).isNullAt(2)).isTrue();
        assertThat(scored.get(1).getUTF8String(3).toString()).contains("got null");
        assertThat(scored.get(2).isNullAt(2)).isTrue();
        assertThat(scored.get(2).getUTF8String(3).toString()).isEqualTo("Column 'features' row 2 of partition -1: value at index 0 is NaN");
        assertThat(scored.get(3).getArray(0).toFloatArray()).containsExactly(-2f, 4f);
        assertThat(scored.get(3).getArray(2).toFloatArray()).containsExactly(byHand(-2, 4));
        assertThat(scored.get(4).getArray(2).toFloatArray()).containsExactly(byHand(0, 0));
        assertThat(scored.get(4).isNullAt(3)).isTrue();

        // A double array is screened for NaN after the batch is filled: the NaN row leaves the batch (later rows move
        // down a slot) and keeps its input values; the rows around it keep their own predictions.
        StructType din = new StructType().add("features", DataTypes.createArrayType(DataTypes.DoubleType, true), true);
        StructType dout = din.add("y", DataTypes.createArrayType(DataTypes.FloatType, false), true).add("kiln_error", DataTypes.StringType, true);
        ScoringPlan doubles = new ScoringPlan(handle, List.of(new InputAdapter.DoubleArrayColumn(0, "features", 2)),
                List.of(new OutputColumn("y", 0, 2, OutputColumn.Transform.NONE)), 3, "cpu", false, "", -1, null,
                new KilnMetrics(spark.sparkContext(), "generic-doubles"), din, dout);
        double[][] values = {{3, 1}, {1, Double.NaN}, {-2, 4}, {0, 0}};
        List<org.apache.spark.sql.catalyst.InternalRow> drows = new ArrayList<>();
        for (double[] v : values) {
            drows.add(new org.apache.spark.sql.catalyst.expressions.GenericInternalRow(new Object[] {
                    new org.apache.spark.sql.catalyst.util.GenericArrayData(new Object[] {v[0], v[1]})}));
        }
        List<org.apache.spark.sql.catalyst.InternalRow> dscored = new ArrayList<>();
        try (PartitionScorer scorer = new PartitionScorer(doubles, drows.iterator(), null, true)) {
            scorer.forEachRemaining(dscored::add);
        }
        assertThat(dscored).hasSize(4).allSatisfy(r -> assertThat(r).isInstanceOf(org.apache.spark.sql.catalyst.expressions.GenericInternalRow.class));
        assertThat(dscored.get(0).getArray(1).toFloatArray()).containsExactly(byHand(3, 1));
        assertThat(dscored.get(1).isNullAt(1)).isTrue();
        assertThat(dscored.get(1).getArray(0).toDoubleArray()[0]).isEqualTo(1.0);
        assertThat(dscored.get(1).getUTF8String(2).toString()).isEqualTo("Column 'features' row 1 of partition -1: value at index 1 is NaN");
        assertThat(dscored.get(2).getArray(1).toFloatArray()).containsExactly(byHand(-2, 4));
        assertThat(dscored.get(3).getArray(1).toFloatArray()).containsExactly(byHand(0, 0));

        // onError=fail names the first bad row: the NaN of row 1 (found by the batch screen), not the null of row 2
        // (found while reading, before the screen ran).
        ScoringPlan failing = new ScoringPlan(handle, doubles.inputs(), doubles.outputs(), 3, "cpu", true, "", -1, null,
                new KilnMetrics(spark.sparkContext(), "generic-fail"), din, new StructType().add(dout.fields()[0]).add(dout.fields()[1]));
        List<org.apache.spark.sql.catalyst.InternalRow> nanThenNull = List.of(drows.get(0), drows.get(1),
                new org.apache.spark.sql.catalyst.expressions.GenericInternalRow(new Object[] {null}));
        for (boolean generic : new boolean[] {true, false}) {
            try (PartitionScorer scorer = new PartitionScorer(failing, nanThenNull.iterator(), null, generic)) {
                assertThatThrownBy(scorer::hasNext).as("generic %s", generic)
                        .hasMessageStartingWith("Column 'features' row 1 of partition -1: value at index 1 is NaN");
            }
        }
        handle.destroy();
    }

    /** A bad row is named by a key column of any type, here a date and a timestamp, on both paths. */
    @Test
    void badRowsAreNamedByADateOrTimestampKey() {
        StructType schema = new StructType().add("day", DataTypes.DateType, false).add("at", DataTypes.TimestampType, false)
                .add("features", DataTypes.createArrayType(DataTypes.FloatType, true), true);
        java.sql.Timestamp at = java.sql.Timestamp.valueOf("2024-01-02 03:04:05");
        List<Row> data = List.of(RowFactory.create(java.sql.Date.valueOf("2024-01-01"), at, List.of(3f, 1f)),
                RowFactory.create(java.sql.Date.valueOf("2024-01-02"), at, List.of(Float.NaN, 1f)));
        for (String internal : new String[] {"true", "false"}) {
            withConf("spark.kiln.useInternalRows", internal, () -> {
                for (String key : new String[] {"day", "at"}) {
                    List<Row> out = new KilnModel().setModelUri(handUri).setInputCols("features").setOutputCols("y").setOnError("null").setKeyCol(key)
                            .transform(spark.createDataFrame(data, schema).coalesce(1)).orderBy("day").collectAsList();
                    assertThat(floats(out.get(0), "y")).containsExactly(byHand(3, 1));
                    assertThat(out.get(1).getString(4)).as("internal rows %s, key %s", internal, key)
                            .isEqualTo("Column 'features' row with " + key + "=" + (key.equals("day") ? "2024-01-02" : at) + ": value at index 0 is NaN");
                }
            });
        }
    }

    /**
     * {@code scoreLocally} runs a task's per-partition path in this JVM without a job: Spark's internal rows in, output
     * rows of the transform's schema out in order (their bytes valid during the call), predictions by hand, the bad
     * row nulled with its reason, across batches of two; nothing left in the task allocators afterwards.
     */
    @Test
    void scoreLocallyRunsThePartitionPathWithoutAJob() {
        StructType in = new StructType().add("id", DataTypes.LongType, false).add("features", DataTypes.createArrayType(DataTypes.FloatType, false), true);
        org.apache.spark.sql.catalyst.expressions.UnsafeProjection unsafe = org.apache.spark.sql.catalyst.expressions.UnsafeProjection.create(in);
        float[][] features = {{3, 1}, {-2, 4}, {Float.NaN, 1}, {0, 0}, {1.5f, -0.5f}};
        List<org.apache.spark.sql.catalyst.InternalRow> rows = new ArrayList<>();
        for (int i = 0; i < features.length; i++) {
            rows.add(unsafe.apply(new org.apache.spark.sql.catalyst.expressions.GenericInternalRow(new Object[] {(long) i,
                    org.apache.spark.sql.catalyst.expressions.UnsafeArrayData.fromPrimitiveArray(features[i])})).copy());
        }
        KilnModel model = new KilnModel().setModelUri(handUri).setInputCols("features").setOutputCols("y").setOnError("null").setBatchSize(2);
        List<org.apache.spark.sql.catalyst.InternalRow> out = new ArrayList<>();
        long count = model.scoreLocally(spark, in, rows.iterator(), row -> out.add(row.copy()));
        assertThat(count).isEqualTo(5);
        assertThat(out).hasSize(5);
        for (int i = 0; i < 5; i++) {
            assertThat(out.get(i).getLong(0)).isEqualTo(i);
            assertThat(out.get(i).getArray(1).toFloatArray()).containsExactly(features[i]);
            if (i == 2) {
                assertThat(out.get(i).isNullAt(2)).isTrue();
                assertThat(out.get(i).getUTF8String(3).toString()).isEqualTo("Column 'features' row 2 of partition -1: value at index 0 is NaN");
            } else {
                assertThat(out.get(i).getArray(2).toFloatArray()).containsExactly(byHand(features[i][0], features[i][1]));
                assertThat(out.get(i).isNullAt(3)).isTrue();
            }
        }
        assertThat(model.lastMetrics().rows()).isEqualTo(5);
        assertThat(PartitionScorer.allocatedBytes()).isZero();
    }

    /**
     * Where the features are the row's first variable-length field, a batch is its output rows: the features are
     * written once, into the row handed out, and the model reads them there (a string before them moves them from row
     * to row, so that schema takes the Arrow batch). Both give the hand-worked predictions and every column back,
     * including a row refused for a NaN (null prediction and its reason) and a row too long for its room in place (a
     * 300-character name); in place, a row read on another thread is a heap copy that outlives the partition, and the
     * last row stays readable after the input ends, until the partition is closed.
     */
    @Test
    void rowsAreBuiltInPlaceWhereTheFeaturesLeadTheVariableLengthFields() throws Exception {
        org.apache.spark.sql.types.DataType floats = DataTypes.createArrayType(DataTypes.FloatType, false);
        StructType leading = new StructType().add("id", DataTypes.LongType, false).add("features", floats, true).add("name", DataTypes.StringType, true);
        StructType trailing = new StructType().add("id", DataTypes.LongType, false).add("name", DataTypes.StringType, true).add("features", floats, true);
        float[][] features = {{3, 1}, {-2, 4}, {Float.NaN, 1}, {0, 0}, {1.5f, -0.5f}};
        String[] names = {"a", "bb", "c", "d".repeat(300), ""};
        KilnModel model = new KilnModel().setModelUri(handUri).setInputCols("features").setOutputCols("y").setOnError("null").setBatchSize(2);
        for (StructType in : List.of(leading, trailing)) {
            int f = in.fieldIndex("features");
            int n = in.fieldIndex("name");
            org.apache.spark.sql.catalyst.expressions.UnsafeProjection unsafe = org.apache.spark.sql.catalyst.expressions.UnsafeProjection.create(in);
            List<org.apache.spark.sql.catalyst.InternalRow> rows = new ArrayList<>();
            for (int i = 0; i < features.length; i++) {
                Object[] values = new Object[3];
                values[0] = (long) i;
                values[f] = org.apache.spark.sql.catalyst.expressions.UnsafeArrayData.fromPrimitiveArray(features[i]);
                values[n] = org.apache.spark.unsafe.types.UTF8String.fromString(names[i]);
                rows.add(unsafe.apply(new org.apache.spark.sql.catalyst.expressions.GenericInternalRow(values)).copy());
            }
            List<org.apache.spark.sql.catalyst.InternalRow> out = new ArrayList<>();
            org.apache.spark.sql.catalyst.InternalRow[] fromAnotherThread = new org.apache.spark.sql.catalyst.InternalRow[1];
            try (PartitionScorer scorer = new PartitionScorer(model.scoringPlan(spark, in), rows.iterator(), null)) {
                assertThat(scorer.rowsInPlace()).as("in place for " + in.simpleString()).isEqualTo(in == leading);
                org.apache.spark.sql.catalyst.InternalRow last = null;
                while (scorer.hasNext()) {
                    if (out.size() == 4) {
                        // The last row, kept without a copy past the end of the input: still readable until close.
                        last = scorer.next();
                        out.add(last.copy());
                    } else if (out.size() == 1) {
                        Thread reader = new Thread(() -> fromAnotherThread[0] = scorer.next());
                        reader.start();
                        reader.join();
                        if (in == leading) {
                            // Not the batch's off-heap memory, which closing the scorer frees: a heap copy to keep.
                            assertThat(((org.apache.spark.sql.catalyst.expressions.UnsafeRow) fromAnotherThread[0]).getBaseObject()).isNotNull();
                            out.add(fromAnotherThread[0]);
                        } else {
                            out.add(fromAnotherThread[0].copy());
                        }
                    } else {
                        out.add(scorer.next().copy());
                    }
                }
                assertThat(last.getArray(f).toFloatArray()).as("the last row after the input ended").containsExactly(features[4]);
                assertThat(last.getArray(3).toFloatArray()).containsExactly(byHand(features[4][0], features[4][1]));
            }
            assertThat(out).hasSize(5);
            for (int i = 0; i < 5; i++) {
                String what = in.simpleString() + " row " + i;
                assertThat(out.get(i).getLong(0)).as(what).isEqualTo(i);
                assertThat(out.get(i).getUTF8String(n).toString()).as(what).isEqualTo(names[i]);
                assertThat(out.get(i).getArray(f).toFloatArray()).as(what).containsExactly(features[i]);
                if (i == 2) {
                    assertThat(out.get(i).isNullAt(3)).isTrue();
                    assertThat(out.get(i).getUTF8String(4).toString()).isEqualTo("Column 'features' row 2 of partition -1: value at index 0 is NaN");
                } else {
                    assertThat(out.get(i).getArray(3).toFloatArray()).as(what).containsExactly(byHand(features[i][0], features[i][1]));
                    assertThat(out.get(i).isNullAt(4)).isTrue();
                }
            }
            assertThat(PartitionScorer.allocatedBytes()).isZero();
        }
    }

    /** The other input kinds and output transforms, through the public-API path. */
    @Test
    void thePublicRowFallbackTakesEveryInputKindAndTransform() {
        withConf("spark.kiln.useInternalRows", "false", () -> {
            acceptsDoubleArraysVectorsAndNumericColumns();
            integerIdColumnsFeedAnEmbedding();
            argmaxAndSoftmaxPostProcessing();
            aScalarOutputBecomesAFloatColumn();
        });
    }

    /** Runs {@code body} with a session conf value set, and unsets it afterwards. */
    private static void withConf(String key, String value, Runnable body) {
        spark.conf().set(key, value);
        try {
            body.run();
        } finally {
            spark.conf().unset(key);
        }
    }

    /** y = relu(x W^T + b) of {@link #handModel()}, worked out by hand for one row. */
    private static float[] byHand(float x0, float x1) {
        return new float[] {Math.max(0, x0 + 2 * x1 + 0.5f), Math.max(0, -x0 + 0.5f * x1 - 1)};
    }

    /**
     * The transform is a plan node (no RDD in between): explain shows it, its rows go through a shuffle (whose
     * serializer takes only UnsafeRows), a filter and projection above it, a cache and a self-join, with every
     * prediction worked out by hand.
     */
    @Test
    void theTransformIsAPlanNodeThatComposesWithTheRestOfTheQuery() {
        int n = 300;
        List<float[]> rows = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            rows.add(new float[] {i % 7 - 3, i % 5 - 2});
        }
        Dataset<Row> scored = new KilnModel().setModelUri(handUri).setInputCols("features").setOutputCols("y").setBatchSize(16)
                .transform(featureRows(rows, 3));
        String executed = scored.queryExecution().executedPlan().toString();
        assertThat(executed).contains("KilnScore").doesNotContain("ExistingRDD");
        assertThat(scored.queryExecution().optimizedPlan().toString()).contains("KilnScore");

        List<Row> shuffled = scored.repartition(4, org.apache.spark.sql.functions.col("y")).filter("id % 2 = 0").select("y", "id").collectAsList();
        assertThat(shuffled).hasSize(n / 2);
        for (Row row : shuffled) {
            int id = (int) row.getLong(1);
            assertThat(floats(row, "y")).as("row %d", id).containsExactly(byHand(rows.get(id)[0], rows.get(id)[1]));
        }

        scored.cache();
        try {
            assertThat(scored.count()).isEqualTo(n);
            Dataset<Row> other = scored.select(org.apache.spark.sql.functions.col("id"), org.apache.spark.sql.functions.col("y").as("y2"));
            List<Row> joined = scored.join(other, "id").filter("y = y2").collectAsList();
            assertThat(joined).hasSize(n);
            for (Row row : joined) {
                int id = (int) row.getLong(0);
                assertThat(floats(row, "y")).containsExactly(byHand(rows.get(id)[0], rows.get(id)[1]));
            }
        } finally {
            scored.unpersist(true);
        }
    }

    /**
     * A scored frame used twice in one query (self-join, intersect, except: the analyzer gives the second use fresh
     * column ids), and read from another session through a global temporary view (planned there too).
     */
    @Test
    void aScoredFrameCanMeetItselfAndBeReadFromANewSession() {
        List<float[]> rows = List.of(new float[] {3, 1}, new float[] {-2, 4}, new float[] {0, 0});
        Dataset<Row> scored = new KilnModel().setModelUri(handUri).setInputCols("features").setOutputCols("y").transform(featureRows(rows, 2));
        List<Row> joined = scored.join(scored, "id").orderBy("id").collectAsList();
        assertThat(joined).hasSize(3);
        assertThat(floats(joined.get(1), "features")).containsExactly(-2f, 4f);
        assertThat(joined.get(1).<Float>getList(2)).containsExactly(6.5f, 3f);
        assertThat(joined.get(1).<Float>getList(4)).containsExactly(6.5f, 3f);
        List<Row> aliased = scored.as("l").join(scored.as("r"), org.apache.spark.sql.functions.col("l.id").equalTo(org.apache.spark.sql.functions.col("r.id")))
                .select("l.id", "r.y").orderBy("l.id").collectAsList();
        assertThat(aliased.get(0).<Float>getList(1)).containsExactly(5.5f, 0f);
        assertThat(scored.intersect(scored).count()).isEqualTo(3);
        assertThat(scored.except(scored).count()).isZero();

        // Partitioned by id before scoring: grouping by id afterwards needs no second shuffle.
        Dataset<Row> partitioned = new KilnModel().setModelUri(handUri).setInputCols("features").setOutputCols("y")
                .transform(featureRows(rows, 2).repartition(3, org.apache.spark.sql.functions.col("id")));
        String grouped = partitioned.groupBy("id").count().queryExecution().executedPlan().toString();
        assertThat(grouped.split("Exchange hashpartitioning", -1)).as("shuffles in %s", grouped).hasSize(2);
        assertThat(partitioned.groupBy("id").count().count()).isEqualTo(3);

        scored.createOrReplaceGlobalTempView("kiln_scored");
        try {
            List<Row> fromNewSession = spark.newSession().sql("SELECT id, y FROM global_temp.kiln_scored ORDER BY id").collectAsList();
            assertThat(fromNewSession.get(2).<Float>getList(1)).containsExactly(0.5f, 0f);
        } finally {
            spark.catalog().dropGlobalTempView("kiln_scored");
        }
    }

    /** The hand model over [3, 1], [NaN, 0], [1] (too short), [-2, 4] in batches of 2, bad rows nulled. */
    private static Dataset<Row> goodAndBadRowsWithOnErrorNull() {
        List<float[]> rows = List.of(new float[] {3, 1}, new float[] {Float.NaN, 0}, new float[] {1}, new float[] {-2, 4});
        return new KilnModel().setModelUri(handUri).setInputCols("features").setOutputCols("y").setOnError("null").setBatchSize(2)
                .transform(featureRows(rows, 1));
    }

    /** relu([x0 + 2 x1 + 0.5, -x0 + x1/2 - 1]) for the good rows, worked out by hand; reasons for the bad ones. */
    private static void assertGoodAndBadRowsByHand(List<Row> out) {
        assertThat(out).hasSize(4);
        assertThat(floats(out.get(0), "y")).containsExactly(5.5f, 0f);
        assertThat(out.get(1).getString(3)).isEqualTo("Column 'features' row 1 of partition 0: value at index 0 is NaN");
        assertThat(out.get(2).getString(3)).contains("got length 1");
        assertThat(floats(out.get(3), "y")).containsExactly(6.5f, 3f);
        assertThat(floats(out.get(3), "features")).containsExactly(-2f, 4f);
    }

    /** With {@code spark.kiln.planNode=false} the transform goes through an RDD of internal rows, as before the node. */
    @Test
    void theRddFallbackGivesTheSameResults() {
        withConf("spark.kiln.planNode", "false", () -> {
            Dataset<Row> scored = goodAndBadRowsWithOnErrorNull();
            assertThat(scored.queryExecution().executedPlan().toString()).contains("ExistingRDD").doesNotContain("KilnScore");
            assertGoodAndBadRowsByHand(scored.collectAsList());
        });
    }

    @Test
    void thePublicRowFallbackGivesTheSameResults() {
        withConf("spark.kiln.useInternalRows", "false", () -> {
            // A column the model does not read, of a type the fallback does not convert, passes through untouched.
            Dataset<Row> tagged = featureRows(List.of(new float[] {3, 1}, new float[] {-2, 4}), 1)
                    .withColumn("tags", org.apache.spark.sql.functions.array(org.apache.spark.sql.functions.lit("a"), org.apache.spark.sql.functions.lit("b")));
            List<Row> withTags = new KilnModel().setModelUri(handUri).setInputCols("features").setOutputCols("y").transform(tagged).collectAsList();
            assertThat(withTags.get(1).<String>getList(2)).containsExactly("a", "b");
            assertThat(floats(withTags.get(1), "y")).containsExactly(6.5f, 3f);
            assertGoodAndBadRowsByHand(goodAndBadRowsWithOnErrorNull().collectAsList());
        });
    }

    /** Unset, the batch holds 1 MiB of model input: worked out by hand for a few row widths, and shown by explain. */
    @Test
    void withoutABatchSizeBatchesHoldOneMebibyteOfInput() {
        assertThat(KilnModel.autoBatchSize(512 * 4)).isEqualTo(512);
        assertThat(KilnModel.autoBatchSize(784 * 4)).isEqualTo(320);
        assertThat(KilnModel.autoBatchSize(2 * 4)).isEqualTo(4096);
        assertThat(KilnModel.autoBatchSize(1 << 20)).isEqualTo(64);
        StructType schema = new StructType().add("features", DataTypes.createArrayType(DataTypes.FloatType, false));
        assertThat(new KilnModel().setModelUri(mlpUri).setInputCols("features").batchSizeFor(schema)).isEqualTo(512);
        assertThat(new KilnModel().setModelUri(mlpUri).setInputCols("features").setBatchSize(100).batchSizeFor(schema)).isEqualTo(100);
        // The hand model's rows are 2 floats: the most rows a batch holds.
        Dataset<Row> scored = new KilnModel().setModelUri(handUri).setInputCols("features").setOutputCols("y")
                .transform(featureRows(List.of(new float[] {3, 1}), 1));
        assertThat(scored.queryExecution().executedPlan().toString()).contains("batch 4096");
        assertThat(floats(scored.collectAsList().get(0), "y")).containsExactly(5.5f, 0f);
    }

    @Test
    void transformSchemaChecksColumnsBeforeAnyJob() {
        StructType schema = new StructType().add("features", DataTypes.StringType).add("a", DataTypes.DoubleType).add("y", DataTypes.DoubleType);
        assertThatThrownBy(() -> new KilnModel().setModelUri(mlpUri).setInputCols("features").transformSchema(schema))
                .isInstanceOf(KilnException.class)
                .hasMessage("Column 'features' is string but model input 'x' [batch, 512] expects array<float>, array<double> or an integer array of length 512, "
                        + "a vector of size 512, or that many numeric columns");
        assertThatThrownBy(() -> new KilnModel().setModelUri(mlpUri).setInputCols("missing").transformSchema(schema))
                .hasMessageContaining("Column 'missing' does not exist");
        assertThatThrownBy(() -> new KilnModel().setModelUri(handUri).setInputCols("a", "a", "a").transformSchema(schema))
                .hasMessageContaining("takes 2 values per row but 3 numeric columns were given");
        assertThatThrownBy(() -> new KilnModel().setModelUri(handUri).setInputCols("a", "a").setOutputCols("y").transformSchema(schema))
                .hasMessageContaining("Output column 'y' already exists");
        assertThatThrownBy(() -> new KilnModel().setModelUri(handUri).setInputCols("a", "a").setOutputCols("Kiln_Error").setOnError("null").transformSchema(schema))
                .hasMessageContaining("Output column 'Kiln_Error' is named twice");
        StructType ok = new KilnModel().setModelUri(handUri).setInputCols("a", "a").setOnError("null").transformSchema(schema);
        assertThat(ok.fieldNames()).containsExactly("features", "a", "y", "prediction", "kiln_error");
    }

    @Test
    void worksAsAPipelineStageAndAsASqlFunction() {
        Dataset<Row> frame = featureRows(List.of(new float[] {3, 1}, new float[] {-2, 4}), 1);
        KilnModel stage = new KilnModel().setModelUri(handUri).setInputCols("features").setOutputCols("y");
        PipelineModel pipeline = new Pipeline().setStages(new PipelineStage[] {stage}).fit(frame);
        assertThat(floats(pipeline.transform(frame).orderBy("id").collectAsList().get(1), "y")).containsExactly(6.5f, 3f);

        KilnUdf.register(spark, "hand_score", handUri);
        frame.createOrReplaceTempView("t");
        List<Row> sql = spark.sql("SELECT id, hand_score(features) AS y FROM t ORDER BY id").collectAsList();
        assertThat(floats(sql.get(0), "y")).containsExactly(5.5f, 0f);
        assertThat(floats(sql.get(1), "y")).containsExactly(6.5f, 3f);
    }
}
