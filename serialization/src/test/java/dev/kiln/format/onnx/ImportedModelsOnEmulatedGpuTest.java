package dev.kiln.format.onnx;

import dev.kiln.engine.Kiln;
import dev.kiln.engine.backend.cuda.CudaBackend;
import dev.kiln.engine.backend.cuda.EmulatedCudaApi;
import dev.kiln.engine.exec.CompiledModel;
import dev.kiln.engine.ir.Graph;
import dev.kiln.engine.pass.PassPipeline;
import dev.kiln.engine.tensor.TensorData;
import dev.kiln.format.ReferenceModels;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * What scripts/gpu-check.sh runs on a GPU, run here on the emulated device (engine's {@code EmulatedCudaApi}, the
 * CUDA kernels written again in Java): each reference model imported from ONNX, compiled for the cuda backend, against
 * PyTorch's own outputs. Proves the lowering accepts every op the importer produces and lays the models out right;
 * the CUDA C itself runs only on the GPU machine.
 */
class ImportedModelsOnEmulatedGpuTest {
    @ParameterizedTest
    @ValueSource(strings = {"mlp", "cnn", "encoder"})
    void importedReferenceModelsMatchPyTorchOnTheCudaBackend(String name) {
        Graph graph = OnnxImporter.importModel(ReferenceModels.dir(name).resolve("model.onnx"));
        Map<String, TensorData> inputs = ReferenceModels.inputs(name);
        EmulatedCudaApi gpu = new EmulatedCudaApi();
        try (CompiledModel model = Kiln.compile(graph, PassPipeline.standard(), new CudaBackend("cuda:emulated", gpu))) {
            Map<String, TensorData> actual = model.run(inputs);
            for (Map.Entry<String, TensorData> e : ReferenceModels.expected(name).entrySet()) {
                ReferenceModels.assertAllClose(actual.get(e.getKey()).toFloatArray(), e.getValue());
            }
        }
        assertThat(gpu.liveDeviceBlocks()).as("device blocks left after close").isZero();
        assertThat(gpu.livePinnedBuffers()).as("pinned buffers left after close").isZero();
    }
}
