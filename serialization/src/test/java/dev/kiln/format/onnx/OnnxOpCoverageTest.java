package dev.kiln.format.onnx;

import dev.kiln.engine.backend.cpu.CpuBackend;
import dev.kiln.engine.exec.CompiledModel;
import dev.kiln.engine.pass.PassPipeline;
import dev.kiln.engine.pass.Passes;
import dev.kiln.engine.tensor.TensorData;
import dev.kiln.format.onnx.proto.Onnx;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

import static dev.kiln.format.onnx.OnnxTestModels.floats;
import static dev.kiln.format.onnx.OnnxTestModels.input;
import static dev.kiln.format.onnx.OnnxTestModels.int64s;
import static dev.kiln.format.onnx.OnnxTestModels.ints;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

/**
 * One single-node ONNX model per op of the import list not covered elsewhere, with the edge attributes the issue
 * names (broadcasting, negative axes, asymmetric pads, groups), run after import and the standard passes. Every
 * expected value is worked out by hand in the comment beside it. The first input always has a symbolic batch
 * dimension and is fed with batch 1 unless the case says otherwise.
 */
class OnnxOpCoverageTest {
    @TempDir
    Path dir;

    private static final float[] X23 = {1, 2, 3, 4, 5, 6};

    // ---- model building ------------------------------------------------------------------------------------------

    private static Onnx.AttributeProto attr(String name, long value) {
        return OnnxTestModels.intAttr(name, value);
    }

    private static Onnx.AttributeProto attr(String name, float value) {
        return OnnxTestModels.floatAttr(name, value);
    }

    private static Onnx.NodeProto.Builder node(String op, String... inputs) {
        Onnx.NodeProto.Builder n = Onnx.NodeProto.newBuilder().setOpType(op).setName(op.toLowerCase() + "_0").addOutput("y");
        for (String i : inputs) {
            n.addInput(i);
        }
        return n;
    }

    /** Imports a one-node model (input "x" of {@code dims} after the batch), runs it on batch-1 {@code x}, returns "y". */
    private TensorData run(Onnx.NodeProto.Builder node, long[] dims, float[] x, Onnx.TensorProto... initializers) throws Exception {
        Onnx.GraphProto.Builder graph = Onnx.GraphProto.newBuilder().addInput(input("x", dims)).addNode(node.build())
                .addOutput(Onnx.ValueInfoProto.newBuilder().setName("y"));
        for (Onnx.TensorProto t : initializers) {
            graph.addInitializer(t);
        }
        Path file = dir.resolve(node.getOpType() + System.nanoTime() + ".onnx");
        Files.write(file, Onnx.ModelProto.newBuilder().setIrVersion(8).addOpsetImport(Onnx.OperatorSetIdProto.newBuilder().setVersion(17))
                .setGraph(graph).build().toByteArray());
        long[] shape = new long[dims.length + 1];
        shape[0] = 1;
        System.arraycopy(dims, 0, shape, 1, dims.length);
        try (CompiledModel model = dev.kiln.engine.Kiln.compile(OnnxImporter.importModel(file), new PassPipeline(Passes.standard(), true), CpuBackend.INSTANCE)) {
            return model.run(Map.of("x", TensorData.ofFloats(shape, x))).get("y");
        }
    }

    private static void assertValues(TensorData y, float... expected) {
        float[] v = y.toFloatArray();
        assertThat(v).hasSameSizeAs(expected);
        for (int i = 0; i < expected.length; i++) {
            assertThat(v[i]).as("element %d", i).isCloseTo(expected[i], within(1e-6f + 1e-6f * Math.abs(expected[i])));
        }
    }

    // ---- elementwise and broadcasting --------------------------------------------------------------------------

    @Test
    void addBroadcastsARowAndTakesTheConstantFirst() throws Exception {
        // [[1, 2, 3], [4, 5, 6]] + [10, 20, 30]; the constant is the first operand, as a bias-first export writes it.
        assertValues(run(node("Add", "b", "x"), new long[] {2, 3}, X23, floats("b", new long[] {3}, 10, 20, 30)), 11, 22, 33, 14, 25, 36);
    }

    @Test
    void subMulDivPowWithScalarsAndColumns() throws Exception {
        assertValues(run(node("Sub", "x", "c"), new long[] {2, 3}, X23, floats("c", new long[] {}, 1)), 0, 1, 2, 3, 4, 5);
        // times a column [[2], [3]]: row 0 doubled, row 1 tripled.
        assertValues(run(node("Mul", "x", "c"), new long[] {2, 3}, X23, floats("c", new long[] {2, 1}, 2, 3)), 2, 4, 6, 12, 15, 18);
        assertValues(run(node("Div", "x", "c"), new long[] {2, 3}, X23, floats("c", new long[] {3}, 1, 2, 4)), 1, 1, 0.75f, 4, 2.5f, 1.5f);
        assertValues(run(node("Pow", "x", "c"), new long[] {2, 3}, X23, floats("c", new long[] {}, 2)), 1, 4, 9, 16, 25, 36);
    }

    @Test
    void unaryFunctions() throws Exception {
        long[] four = {4};
        assertValues(run(node("Sqrt", "x"), four, new float[] {0, 1, 4, 9}), 0, 1, 2, 3);
        assertValues(run(node("Exp", "x"), four, new float[] {0, 1, -1, 2}), 1, 2.7182817f, 0.36787945f, 7.389056f);
        assertValues(run(node("Log", "x"), four, new float[] {1, 2.7182817f, 0.5f, 10}), 0, 1, -0.6931472f, 2.3025851f);
        assertValues(run(node("Erf", "x"), four, new float[] {0, 0.5f, -1, 2}), 0, 0.5204999f, -0.8427008f, 0.9953223f);
        assertValues(run(node("Tanh", "x"), four, new float[] {0, 0.5f, -1, 3}), 0, 0.46211716f, -0.7615942f, 0.9950548f);
        assertValues(run(node("Sigmoid", "x"), four, new float[] {0, 2, -2, 1}), 0.5f, 0.8807971f, 0.11920292f, 0.7310586f);
        assertValues(run(node("Relu", "x"), four, new float[] {-1, 0, 2, -0.5f}), 0, 0, 2, 0);
        assertValues(run(node("Identity", "x"), four, new float[] {-1, 0, 2, 3}), -1, 0, 2, 3);
        assertValues(run(node("Dropout", "x"), four, new float[] {-1, 0, 2, 3}), -1, 0, 2, 3);
        assertValues(run(node("Cast", "x").addAttribute(attr("to", 1L)), four, new float[] {-1, 0, 2, 3}), -1, 0, 2, 3);
    }

    @Test
    void aConstantNodeFeedsTheGraph() throws Exception {
        Onnx.NodeProto constant = Onnx.NodeProto.newBuilder().setOpType("Constant").addOutput("c")
                .addAttribute(Onnx.AttributeProto.newBuilder().setName("value").setType(Onnx.AttributeProto.AttributeType.TENSOR)
                        .setT(floats("c", new long[] {2}, 100, 200))).build();
        Onnx.GraphProto.Builder graph = Onnx.GraphProto.newBuilder().addInput(input("x", 2)).addNode(constant).addNode(node("Add", "x", "c").build())
                .addOutput(Onnx.ValueInfoProto.newBuilder().setName("y"));
        Path file = dir.resolve("constant.onnx");
        Files.write(file, Onnx.ModelProto.newBuilder().setIrVersion(8).addOpsetImport(Onnx.OperatorSetIdProto.newBuilder().setVersion(17))
                .setGraph(graph).build().toByteArray());
        try (CompiledModel model = dev.kiln.engine.Kiln.compile(OnnxImporter.importModel(file), new PassPipeline(Passes.standard(), true), CpuBackend.INSTANCE)) {
            assertValues(model.run(Map.of("x", TensorData.ofFloats(new long[] {1, 2}, new float[] {1, 2}))).get("y"), 101, 202);
        }
    }

    // ---- linear algebra ----------------------------------------------------------------------------------------

    @Test
    void matMulBroadcastsAMatrixOverLeadingAxes() throws Exception {
        // [N, 2, 3] @ [[1, 0], [0, 1], [1, 1]]: [1, 2, 3] -> [4, 5], [4, 5, 6] -> [10, 11].
        assertValues(run(node("MatMul", "x", "w"), new long[] {2, 3}, X23, floats("w", new long[] {3, 2}, 1, 0, 0, 1, 1, 1)), 4, 5, 10, 11);
    }

    @Test
    void gemmWithTransposedWeightsAlphaAndBeta() throws Exception {
        // 2 * x W^T + 0.5 * C with W = [[1, 0, 0], [1, 1, 1]], C = [10, 20], x = [1, 2, 3]: 2 * [1, 6] + [5, 10] = [7, 22].
        Onnx.NodeProto.Builder gemm = node("Gemm", "x", "w", "c").addAttribute(attr("transB", 1L)).addAttribute(attr("alpha", 2f)).addAttribute(attr("beta", 0.5f));
        assertValues(run(gemm, new long[] {3}, new float[] {1, 2, 3}, floats("w", new long[] {2, 3}, 1, 0, 0, 1, 1, 1), floats("c", new long[] {2}, 10, 20)), 7, 22);
    }

    // ---- normalization and softmax -----------------------------------------------------------------------------

    @Test
    void softmaxOverTheLastAxisByNegativeIndex() throws Exception {
        // [0, 0] -> [0.5, 0.5]; [1, 1 + ln 3] -> [1/4, 3/4].
        assertValues(run(node("Softmax", "x").addAttribute(attr("axis", -1L)), new long[] {2, 2}, new float[] {0, 0, 1, 1 + (float) Math.log(3)}),
                0.5f, 0.5f, 0.25f, 0.75f);
    }

    @Test
    void layerNormalizationOverTheLastAxis() throws Exception {
        // [1, 3]: mean 2, variance 1 -> [-1, 1]; scale [2, 1], bias [0, 5] -> [-2, 6]. [2, 6]: mean 4, sd 2 -> the same.
        Onnx.NodeProto.Builder ln = node("LayerNormalization", "x", "s", "b").addAttribute(attr("axis", -1L)).addAttribute(attr("epsilon", 0f));
        assertValues(run(ln, new long[] {2, 2}, new float[] {1, 3, 2, 6}, floats("s", new long[] {2}, 2, 1), floats("b", new long[] {2}, 0, 5)),
                -2, 6, -2, 6);
    }

    // ---- shapes and axes ---------------------------------------------------------------------------------------

    @Test
    void transposeConcatAndSplitWithNegativeAxes() throws Exception {
        // [[1, 2, 3], [4, 5, 6]] transposed (perm [0, 2, 1]) is [[1, 4], [2, 5], [3, 6]].
        assertValues(run(node("Transpose", "x").addAttribute(ints("perm", 0, 2, 1)), new long[] {2, 3}, X23), 1, 4, 2, 5, 3, 6);
        TensorData joined = run(node("Concat", "x", "x").addAttribute(attr("axis", -1L)), new long[] {2, 3}, X23);
        assertThat(joined.shape()).containsExactly(1, 2, 6);
        assertValues(joined, 1, 2, 3, 1, 2, 3, 4, 5, 6, 4, 5, 6);
        // Split [1, 2] on axis -1, first piece: [[1], [4]].
        Onnx.NodeProto.Builder split = Onnx.NodeProto.newBuilder().setOpType("Split").addInput("x").addInput("sizes").addOutput("y").addOutput("rest")
                .addAttribute(attr("axis", -1L));
        TensorData first = run(split, new long[] {2, 3}, X23, int64s("sizes", 1, 2));
        assertThat(first.shape()).containsExactly(1, 2, 1);
        assertValues(first, 1, 4);
    }

    @Test
    void reshapeFlattenSqueezeAndUnsqueeze() throws Exception {
        TensorData reshaped = run(node("Reshape", "x", "s"), new long[] {2, 3}, X23, int64s("s", 0, -1));
        assertThat(reshaped.shape()).containsExactly(1, 6);
        assertValues(reshaped, X23);
        assertThat(run(node("Flatten", "x").addAttribute(attr("axis", 1L)), new long[] {2, 3}, X23).shape()).containsExactly(1, 6);
        TensorData unsqueezed = run(node("Unsqueeze", "x", "a"), new long[] {2, 3}, X23, int64s("a", -1));
        assertThat(unsqueezed.shape()).containsExactly(1, 2, 3, 1);
        assertValues(unsqueezed, X23);
        assertThat(run(node("Squeeze", "x", "a"), new long[] {2, 1, 3}, X23, int64s("a", -2)).shape()).containsExactly(1, 2, 3);
    }

    @Test
    void reductionsWithNegativeAxesAndKeepdims() throws Exception {
        // Means of rows [1, 2, 3] and [4, 5, 6]: [2, 5]; sums down the columns, kept: [[5, 7, 9]].
        TensorData mean = run(node("ReduceMean", "x").addAttribute(ints("axes", -1)).addAttribute(attr("keepdims", 0L)), new long[] {2, 3}, X23);
        assertThat(mean.shape()).containsExactly(1, 2);
        assertValues(mean, 2, 5);
        TensorData sum = run(node("ReduceSum", "x", "a").addAttribute(attr("keepdims", 1L)), new long[] {2, 3}, X23, int64s("a", 1));
        assertThat(sum.shape()).containsExactly(1, 1, 3);
        assertValues(sum, 5, 7, 9);
    }

    // ---- convolution and pooling -------------------------------------------------------------------------------

    @Test
    void groupedConvolutionWithAsymmetricPads() throws Exception {
        // Two groups of one channel, 1x1 kernels 2 and 3, bias [0, 1], one row of padding on top only (pads
        // [top 1, left 0, bottom 0, right 0]): channel 0 [[1, 2], [3, 4]] -> [[0, 0], [2, 4], [6, 8]], channel 1
        // [[5, 6], [7, 8]] -> [[1, 1], [16, 19], [22, 25]].
        Onnx.NodeProto.Builder conv = node("Conv", "x", "w", "b").addAttribute(attr("group", 2L)).addAttribute(ints("pads", 1, 0, 0, 0))
                .addAttribute(ints("kernel_shape", 1, 1));
        TensorData y = run(conv, new long[] {2, 2, 2}, new float[] {1, 2, 3, 4, 5, 6, 7, 8},
                floats("w", new long[] {2, 1, 1, 1}, 2, 3), floats("b", new long[] {2}, 0, 1));
        assertThat(y.shape()).containsExactly(1, 2, 3, 2);
        assertValues(y, 0, 0, 2, 4, 6, 8, 1, 1, 16, 19, 22, 25);
    }

    @Test
    void convolutionWithStridesAndDilations() throws Exception {
        // 1..16 as 4x4, 2x2 kernel of ones dilated by 2 (taps at (0,0), (0,2), (2,0), (2,2)), stride 1: output 2x2:
        // 1+3+9+11 = 24, 2+4+10+12 = 28, 5+7+13+15 = 40, 6+8+14+16 = 44.
        float[] x = new float[16];
        for (int i = 0; i < 16; i++) {
            x[i] = i + 1;
        }
        Onnx.NodeProto.Builder conv = node("Conv", "x", "w").addAttribute(ints("dilations", 2, 2)).addAttribute(ints("kernel_shape", 2, 2));
        assertValues(run(conv, new long[] {1, 4, 4}, x, floats("w", new long[] {1, 1, 2, 2}, 1, 1, 1, 1)), 24, 28, 40, 44);
        // stride 2, no dilation: window sums 1+2+5+6 = 14, 3+4+7+8 = 22, 46, 54.
        Onnx.NodeProto.Builder strided = node("Conv", "x", "w").addAttribute(ints("strides", 2, 2)).addAttribute(ints("kernel_shape", 2, 2));
        assertValues(run(strided, new long[] {1, 4, 4}, x, floats("w", new long[] {1, 1, 2, 2}, 1, 1, 1, 1)), 14, 22, 46, 54);
    }

    @Test
    void maxPoolWithAsymmetricPadsAndGlobalAveragePool() throws Exception {
        // 1..9 as 3x3, kernel 2, stride 2, pads [top 1, left 1, bottom 0, right 0]: windows {1}, {2, 3}, {4, 7}, {5, 6, 8, 9}.
        float[] x = {1, 2, 3, 4, 5, 6, 7, 8, 9};
        Onnx.NodeProto.Builder pool = node("MaxPool", "x").addAttribute(ints("kernel_shape", 2, 2)).addAttribute(ints("strides", 2, 2))
                .addAttribute(ints("pads", 1, 1, 0, 0));
        assertValues(run(pool, new long[] {1, 3, 3}, x), 1, 3, 7, 9);
        TensorData mean = run(node("GlobalAveragePool", "x"), new long[] {1, 3, 3}, x);
        assertThat(mean.shape()).containsExactly(1, 1, 1, 1);
        assertValues(mean, 5);
    }
}
