package dev.kiln.format;

import dev.kiln.engine.Kiln;
import dev.kiln.engine.exec.CompiledModel;
import dev.kiln.engine.nn.Sequential;
import dev.kiln.engine.tensor.Tensor;
import dev.kiln.engine.tensor.TensorData;
import dev.kiln.engine.zoo.ModelZoo;
import org.junit.jupiter.api.Test;

import java.util.Map;

/** The seed MLP written with Kiln's block API reproduces PyTorch's outputs, eagerly and compiled. */
class SeedMlpReferenceTest {
    @Test
    void eagerMatchesPyTorch() {
        Sequential mlp = ModelZoo.seedMlp();
        mlp.loadParameters(ReferenceModels.weights("mlp"));
        Tensor y = mlp.forward(Tensor.of(ReferenceModels.inputs("mlp").get("x")));
        ReferenceModels.assertAllClose(y.toFloatArray(), ReferenceModels.expected("mlp").get("y"));
    }

    @Test
    void compiledMatchesPyTorch() {
        ModelZoo.Entry entry = ModelZoo.get("seed-mlp");
        entry.block().loadParameters(ReferenceModels.weights("mlp"));
        try (CompiledModel model = Kiln.compile(entry.block(), entry.signature())) {
            Map<String, TensorData> out = model.run(ReferenceModels.inputs("mlp"));
            ReferenceModels.assertAllClose(out.get("y").toFloatArray(), ReferenceModels.expected("mlp").get("y"));
        }
    }

    @Test
    void hybridizedMatchesPyTorch() {
        Sequential mlp = ModelZoo.seedMlp();
        mlp.loadParameters(ReferenceModels.weights("mlp")).hybridize();
        Tensor y = mlp.forward(Tensor.of(ReferenceModels.inputs("mlp").get("x")));
        ReferenceModels.assertAllClose(y.toFloatArray(), ReferenceModels.expected("mlp").get("y"));
    }
}
