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

import static dev.kiln.format.onnx.OnnxTestModels.floatAttr;
import static dev.kiln.format.onnx.OnnxTestModels.floats;
import static dev.kiln.format.onnx.OnnxTestModels.input;
import static dev.kiln.format.onnx.OnnxTestModels.int64s;
import static dev.kiln.format.onnx.OnnxTestModels.ints;
import static dev.kiln.format.onnx.OnnxTestModels.string;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

/** Single-op ONNX models built in the test, imported and run; expected values worked out by hand. */
class OnnxOpsTest {
    @TempDir
    Path dir;

    private float[] run(Onnx.NodeProto node, Onnx.ValueInfoProto in, long[] shape, float[] x, Onnx.TensorProto... initializers) throws Exception {
        Onnx.GraphProto.Builder graph = Onnx.GraphProto.newBuilder().addInput(in).addNode(node)
                .addOutput(Onnx.ValueInfoProto.newBuilder().setName(node.getOutput(0)));
        for (Onnx.TensorProto t : initializers) {
            graph.addInitializer(t);
        }
        Path file = dir.resolve(node.getOpType() + ".onnx");
        Files.write(file, Onnx.ModelProto.newBuilder().setIrVersion(8).addOpsetImport(Onnx.OperatorSetIdProto.newBuilder().setVersion(15))
                .setGraph(graph).build().toByteArray());
        try (CompiledModel model = dev.kiln.engine.Kiln.compile(OnnxImporter.importModel(file), new PassPipeline(Passes.standard(), true), CpuBackend.INSTANCE)) {
            return model.run(Map.of(in.getName(), TensorData.ofFloats(shape, x))).get(node.getOutput(0)).toFloatArray();
        }
    }

    @Test
    void leakyRelu() throws Exception {
        Onnx.NodeProto node = Onnx.NodeProto.newBuilder().setOpType("LeakyRelu").addInput("x").addOutput("y").addAttribute(floatAttr("alpha", 0.1f)).build();
        assertThat(run(node, input("x", 3), new long[] {1, 3}, new float[] {-2, 0, 3})).containsExactly(-0.2f, 0f, 3f);
    }

    @Test
    void logSoftmaxOverTheLastAxis() throws Exception {
        Onnx.NodeProto node = Onnx.NodeProto.newBuilder().setOpType("LogSoftmax").addInput("x").addOutput("y").build();
        float[] y = run(node, input("x", 2), new long[] {1, 2}, new float[] {0, (float) Math.log(3)});
        assertThat(y[0]).isCloseTo((float) Math.log(0.25), within(1e-6f));
        assertThat(y[1]).isCloseTo((float) Math.log(0.75), within(1e-6f));
    }

    @Test
    void squeezeDropsSizeOneAxes() throws Exception {
        Onnx.NodeProto node = Onnx.NodeProto.newBuilder().setOpType("Squeeze").addInput("x").addOutput("y").build();
        assertThat(run(node, input("x", 1, 3), new long[] {2, 1, 3}, new float[] {1, 2, 3, 4, 5, 6})).containsExactly(1, 2, 3, 4, 5, 6);
    }

    @Test
    void clipWithBothBounds() throws Exception {
        Onnx.NodeProto node = Onnx.NodeProto.newBuilder().setOpType("Clip").addInput("x").addInput("lo").addInput("hi").addOutput("y").build();
        assertThat(run(node, input("x", 4), new long[] {1, 4}, new float[] {-3, -1, 0.5f, 9},
                floats("lo", new long[] {}, -1), floats("hi", new long[] {}, 2))).containsExactly(-1, -1, 0.5f, 2);
    }

    @Test
    void sliceWithNegativeEndAndAxis() throws Exception {
        // x [1, 2, 4]: keep columns 1..3 (end -1) of the last axis (axis -1).
        Onnx.NodeProto node = Onnx.NodeProto.newBuilder().setOpType("Slice").addInput("x").addInput("s").addInput("e").addInput("a").addOutput("y").build();
        assertThat(run(node, input("x", 2, 4), new long[] {1, 2, 4}, new float[] {1, 2, 3, 4, 5, 6, 7, 8},
                int64s("s", 1), int64s("e", -1), int64s("a", -1))).containsExactly(2, 3, 6, 7);
    }

    @Test
    void averagePoolIsTheMeanOfEachWindow() throws Exception {
        // x = 1..16 on a 4x4 grid, 2x2 windows with stride 2: means of {1,2,5,6}, {3,4,7,8}, {9,10,13,14}, {11,12,15,16}.
        Onnx.NodeProto node = Onnx.NodeProto.newBuilder().setOpType("AveragePool").addInput("x").addOutput("y")
                .addAttribute(Onnx.AttributeProto.newBuilder().setName("kernel_shape").setType(Onnx.AttributeProto.AttributeType.INTS).addInts(2).addInts(2))
                .addAttribute(Onnx.AttributeProto.newBuilder().setName("strides").setType(Onnx.AttributeProto.AttributeType.INTS).addInts(2).addInts(2)).build();
        float[] x = new float[16];
        for (int i = 0; i < 16; i++) {
            x[i] = i + 1;
        }
        assertThat(run(node, input("x", 1, 4, 4), new long[] {1, 1, 4, 4}, x)).containsExactly(3.5f, 5.5f, 11.5f, 13.5f);
    }

    @Test
    void gatherWithConstantIndicesPicksColumnsInOrder() throws Exception {
        Onnx.NodeProto node = Onnx.NodeProto.newBuilder().setOpType("Gather").addInput("x").addInput("i").addOutput("y")
                .addAttribute(Onnx.AttributeProto.newBuilder().setName("axis").setType(Onnx.AttributeProto.AttributeType.INT).setI(1)).build();
        assertThat(run(node, input("x", 4), new long[] {2, 4}, new float[] {10, 11, 12, 13, 20, 21, 22, 23}, int64s("i", 3, 0)))
                .containsExactly(13, 10, 23, 20);
    }

    @Test
    void batchNormalizationFoldsToAPerChannelAffine() throws Exception {
        // Channel 0: (x - 1) / sqrt(4 + 0) * 2 + 3 = x + 2; channel 1: (x - 0) / sqrt(1) * 1 + 0 = x.
        Onnx.NodeProto node = Onnx.NodeProto.newBuilder().setOpType("BatchNormalization").addInput("x").addInput("s").addInput("b").addInput("m").addInput("v")
                .addOutput("y").addAttribute(floatAttr("epsilon", 0f)).build();
        float[] y = run(node, input("x", 2, 1, 2), new long[] {1, 2, 1, 2}, new float[] {1, 5, 7, -7},
                floats("s", new long[] {2}, 2, 1), floats("b", new long[] {2}, 3, 0), floats("m", new long[] {2}, 1, 0), floats("v", new long[] {2}, 4, 1));
        assertThat(y).containsExactly(3, 7, 7, -7);
    }

    @Test
    void averagePoolCountsPaddingOnlyWhenAsked() throws Exception {
        // kernel 3, stride 2, pads 1 on 1..9: windows {1,2,4,5}, {2,3,5,6}, {4,5,7,8}, {5,6,8,9} (sums 12, 16, 24, 28).
        float[] x = {1, 2, 3, 4, 5, 6, 7, 8, 9};
        Onnx.NodeProto.Builder node = Onnx.NodeProto.newBuilder().setOpType("AveragePool").addInput("x").addOutput("y")
                .addAttribute(ints("kernel_shape", 3, 3)).addAttribute(ints("strides", 2, 2)).addAttribute(ints("pads", 1, 1, 1, 1));
        assertThat(run(node.build(), input("x", 1, 3, 3), new long[] {1, 1, 3, 3}, x)).containsExactly(3, 4, 6, 7);
        node.addAttribute(Onnx.AttributeProto.newBuilder().setName("count_include_pad").setType(Onnx.AttributeProto.AttributeType.INT).setI(1));
        float[] counted = run(node.build(), input("x", 1, 3, 3), new long[] {1, 1, 3, 3}, x);
        float[] expected = {12 / 9f, 16 / 9f, 24 / 9f, 28 / 9f};
        for (int i = 0; i < 4; i++) {
            assertThat((double) counted[i]).isCloseTo(expected[i], org.assertj.core.data.Offset.offset(1e-6));
        }
    }

    @Test
    void padReflectAndConstantWithAFillValue() throws Exception {
        // Rows [1, 2, 3]: pads [0, 2, 0, 1] (two before, one after the last axis).
        Onnx.NodeProto reflect = Onnx.NodeProto.newBuilder().setOpType("Pad").addInput("x").addInput("p").addOutput("y")
                .addAttribute(string("mode", "reflect")).build();
        assertThat(run(reflect, input("x", 3), new long[] {1, 3}, new float[] {1, 2, 3}, int64s("p", 0, 2, 0, 1)))
                .containsExactly(3, 2, 1, 2, 3, 2);
        Onnx.NodeProto constant = Onnx.NodeProto.newBuilder().setOpType("Pad").addInput("x").addInput("p").addInput("v").addOutput("y").build();
        assertThat(run(constant, input("x", 3), new long[] {2, 3}, new float[] {1, 2, 3, 4, 5, 6}, int64s("p", 0, 2, 0, 1),
                floats("v", new long[] {}, 9))).containsExactly(9, 9, 1, 2, 3, 9, 9, 9, 4, 5, 6, 9);
    }

    @Test
    void padWithAModeKilnLacksIsListedAsUnsupported() {
        Onnx.NodeProto wrap = Onnx.NodeProto.newBuilder().setOpType("Pad").setName("pad_0").addInput("x").addInput("p").addOutput("y")
                .addAttribute(string("mode", "wrap")).build();
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> run(wrap, input("x", 3), new long[] {1, 3}, new float[] {1, 2, 3}, int64s("p", 0, 1, 0, 0)))
                .hasMessageContaining("Pad").hasMessageContaining("pad_0").hasMessageContaining("mode 'wrap' is not supported");
    }

    @Test
    void poolingWithAutoPadIsRefusedRatherThanPaddedDifferently() {
        for (String op : new String[] {"MaxPool", "AveragePool"}) {
            Onnx.NodeProto pool = Onnx.NodeProto.newBuilder().setOpType(op).setName("pool_0").addInput("x").addOutput("y")
                    .addAttribute(Onnx.AttributeProto.newBuilder().setName("kernel_shape").setType(Onnx.AttributeProto.AttributeType.INTS).addInts(2).addInts(2))
                    .addAttribute(string("auto_pad", "SAME_UPPER")).build();
            org.assertj.core.api.Assertions.assertThatThrownBy(() -> run(pool, input("x", 1, 3, 3), new long[] {1, 1, 3, 3}, new float[9]))
                    .hasMessageContaining(op).hasMessageContaining("pool_0").hasMessageContaining("auto_pad other than NOTSET is not supported");
        }
    }

    @Test
    void gatherFromAConstantTableByInputIdsIsAnEmbedding() throws Exception {
        // ids are an int64 input, as torch.onnx.export writes nn.Embedding; table rows [1, 2], [3, 4], [5, 6].
        Onnx.NodeProto node = Onnx.NodeProto.newBuilder().setOpType("Gather").addInput("table").addInput("ids").addOutput("y").build();
        Onnx.ValueInfoProto ids = input("ids", 2).toBuilder().setType(Onnx.TypeProto.newBuilder().setTensorType(
                input("ids", 2).getType().getTensorType().toBuilder().setElemType(Onnx.TensorProto.DataType.INT64_VALUE))).build();
        assertThat(run(node, ids, new long[] {2, 2}, new float[] {2, 0, 1, -1}, floats("table", new long[] {3, 2}, 1, 2, 3, 4, 5, 6)))
                .containsExactly(5, 6, 1, 2, 3, 4, 5, 6);
    }

    @Test
    void integerInputsAreAcceptedOnlyAsGatherIndices() {
        Onnx.NodeProto add = Onnx.NodeProto.newBuilder().setOpType("Add").setName("add_0").addInput("ids").addInput("ids").addOutput("y").build();
        Onnx.ValueInfoProto ids = input("ids", 2).toBuilder().setType(Onnx.TypeProto.newBuilder().setTensorType(
                input("ids", 2).getType().getTensorType().toBuilder().setElemType(Onnx.TensorProto.DataType.INT64_VALUE))).build();
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> run(add, ids, new long[] {1, 2}, new float[] {1, 2}))
                .hasMessageContaining("Add at node 'add_0'").hasMessageContaining("reads integer input 'ids'");
    }

    @Test
    void geluIsTheExactErfForm() throws Exception {
        // x * Phi(x): Phi(1) = 0.8413447, Phi(-1) = 0.1586553, Phi(2) = 0.9772499.
        Onnx.NodeProto node = Onnx.NodeProto.newBuilder().setOpType("Gelu").addInput("x").addOutput("y").build();
        float[] y = run(node, input("x", 4), new long[] {1, 4}, new float[] {0, 1, -1, 2});
        assertThat((double) y[0]).isCloseTo(0, org.assertj.core.data.Offset.offset(1e-7));
        assertThat((double) y[1]).isCloseTo(0.8413447, org.assertj.core.data.Offset.offset(1e-6));
        assertThat((double) y[2]).isCloseTo(-0.1586553, org.assertj.core.data.Offset.offset(1e-6));
        assertThat((double) y[3]).isCloseTo(2 * 0.9772499, org.assertj.core.data.Offset.offset(1e-6));
    }
}
