package dev.kiln.format.onnx;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;
import dev.kiln.engine.backend.cpu.CpuBackend;
import dev.kiln.engine.exec.CompiledModel;
import dev.kiln.engine.ir.Graph;
import dev.kiln.engine.ir.GraphPrinter;
import dev.kiln.engine.pass.PassPipeline;
import dev.kiln.engine.pass.Passes;
import dev.kiln.format.ReferenceModels;
import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class OnnxImporterTest {
    @Test
    void theMlpImportedFromOnnxReproducesPyTorch() {
        Graph imported = OnnxImporter.importModel(ReferenceModels.dir("mlp").resolve("model.onnx"));
        assertThat(imported.inputNames()).containsExactly("x");
        assertThat(imported.outputNames()).containsExactly("y");
        assertThat(imported.inputs().get(0).type().toString()).isEqualTo("float32[batch, 512]");
        try (CompiledModel model = dev.kiln.engine.Kiln.compile(imported, new PassPipeline(Passes.standard(), true), CpuBackend.INSTANCE)) {
            // Gemm(transB=1) + Relu fuse into three dense nodes, the same graph as the block API's.
            assertThat(model.graph().opCounts()).containsEntry("dense", 3).doesNotContainKey("relu");
            assertThat(GraphPrinter.print(model.graph())).contains("{activation=relu}");
            float[] y = model.run(ReferenceModels.inputs("mlp")).get("y").toFloatArray();
            float[] expected = ReferenceModels.expected("mlp").get("y").toFloatArray();
            for (int i = 0; i < expected.length; i++) {
                assertThat((double) y[i]).isCloseTo(expected[i], org.assertj.core.data.Offset.offset(1e-6 + 1e-4 * Math.abs(expected[i])));
            }
        }
    }

    @Test
    void theCnnImportedFromOnnxReproducesPyTorch() {
        Graph imported = OnnxImporter.importModel(ReferenceModels.dir("cnn").resolve("model.onnx"));
        assertThat(imported.inputs().get(0).type().toString()).isEqualTo("float32[batch, 1, 28, 28]");
        try (CompiledModel model = dev.kiln.engine.Kiln.compile(imported, new PassPipeline(Passes.standard(), true), CpuBackend.INSTANCE)) {
            // BatchNormalization (imported as y * a + c) is folded into the convolution before it.
            assertThat(model.graph().opCounts()).containsEntry("conv2d", 2).containsEntry("max_pool2d", 1).doesNotContainKeys("mul", "add");
            float[] y = model.run(ReferenceModels.inputs("cnn")).get("probabilities").toFloatArray();
            float[] expected = ReferenceModels.expected("cnn").get("probabilities").toFloatArray();
            for (int i = 0; i < expected.length; i++) {
                assertThat((double) y[i]).as("element %d", i).isCloseTo(expected[i], org.assertj.core.data.Offset.offset(1e-6 + 1e-4 * Math.abs(expected[i])));
            }
        }
    }

    @Test
    void theEncoderImportedFromOnnxReproducesPyTorch() {
        // Its Shape -> Gather -> Unsqueeze -> Concat -> Reshape chains fold at import; only the batch stays dynamic.
        Graph imported = OnnxImporter.importModel(ReferenceModels.dir("encoder").resolve("model.onnx"));
        assertThat(imported.inputs().get(0).type().toString()).isEqualTo("float32[batch, 16, 32]");
        try (CompiledModel model = dev.kiln.engine.Kiln.compile(imported, new PassPipeline(Passes.standard(), true), CpuBackend.INSTANCE)) {
            float[] y = model.run(ReferenceModels.inputs("encoder")).get("pooled").toFloatArray();
            float[] expected = ReferenceModels.expected("encoder").get("pooled").toFloatArray();
            for (int i = 0; i < expected.length; i++) {
                assertThat((double) y[i]).as("element %d", i).isCloseTo(expected[i], org.assertj.core.data.Offset.offset(1e-5 + 1e-4 * Math.abs(expected[i])));
            }
        }
    }

    @Test
    void unsupportedNodesAreAllListedInOneError(@org.junit.jupiter.api.io.TempDir java.nio.file.Path dir) throws Exception {
        var input = dev.kiln.format.onnx.proto.Onnx.ValueInfoProto.newBuilder().setName("x").setType(
                dev.kiln.format.onnx.proto.Onnx.TypeProto.newBuilder().setTensorType(dev.kiln.format.onnx.proto.Onnx.TypeProto.Tensor.newBuilder()
                        .setElemType(1).setShape(dev.kiln.format.onnx.proto.Onnx.TensorShapeProto.newBuilder()
                                .addDim(dev.kiln.format.onnx.proto.Onnx.TensorShapeProto.Dimension.newBuilder().setDimParam("N"))
                                .addDim(dev.kiln.format.onnx.proto.Onnx.TensorShapeProto.Dimension.newBuilder().setDimValue(4)))));
        var graph = dev.kiln.format.onnx.proto.Onnx.GraphProto.newBuilder().addInput(input)
                .addNode(dev.kiln.format.onnx.proto.Onnx.NodeProto.newBuilder().setOpType("TopK").setName("top").addInput("x").addOutput("a"))
                .addNode(dev.kiln.format.onnx.proto.Onnx.NodeProto.newBuilder().setOpType("Relu").setName("ok").addInput("a").addOutput("b"))
                .addNode(dev.kiln.format.onnx.proto.Onnx.NodeProto.newBuilder().setOpType("NonMaxSuppression").setName("nms_1").addInput("b").addOutput("c"))
                .addOutput(dev.kiln.format.onnx.proto.Onnx.ValueInfoProto.newBuilder().setName("c"));
        var model = dev.kiln.format.onnx.proto.Onnx.ModelProto.newBuilder().setIrVersion(8)
                .addOpsetImport(dev.kiln.format.onnx.proto.Onnx.OperatorSetIdProto.newBuilder().setVersion(13)).setGraph(graph).build();
        java.nio.file.Path file = dir.resolve("unsupported.onnx");
        java.nio.file.Files.write(file, model.toByteArray());
        assertThatThrownBy(() -> OnnxImporter.importModel(file))
                .isInstanceOf(KilnException.class)
                .hasMessageContaining("unsupported.onnx has 2 unsupported nodes: TopK at node 'top' (opset 13); NonMaxSuppression at node 'nms_1' (opset 13)")
                .hasMessageContaining("Supported ops: Add, AveragePool, BatchNormalization, Cast, Clip, Concat, Constant, Conv")
                .extracting(e -> ((KilnException) e).code()).isEqualTo(ErrorCode.UNSUPPORTED_OP);
    }

    @Test
    void aFileThatIsNotOnnxIsRefusedNamingIt(@org.junit.jupiter.api.io.TempDir java.nio.file.Path dir) throws Exception {
        java.nio.file.Path bad = dir.resolve("bad.onnx");
        java.nio.file.Files.write(bad, new byte[] {(byte) 0xff, (byte) 0xff, (byte) 0xff, 1, 2, 3});
        assertThatThrownBy(() -> OnnxImporter.importModel(bad))
                .isInstanceOf(KilnException.class)
                .hasMessageContaining("Cannot read ONNX model " + bad);
    }
}
