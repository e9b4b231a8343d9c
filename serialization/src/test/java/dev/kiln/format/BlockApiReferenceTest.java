package dev.kiln.format;

import dev.kiln.engine.Kiln;
import dev.kiln.engine.exec.CompiledModel;
import dev.kiln.engine.tensor.Tensor;
import dev.kiln.engine.tensor.TensorData;
import dev.kiln.engine.zoo.ModelZoo;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.Map;

/**
 * The reference architectures written with Kiln's block API (ModelZoo), PyTorch's weights loaded by state_dict name,
 * reproduce PyTorch's outputs within 1e-4 relative, eagerly and compiled.
 */
class BlockApiReferenceTest {
    @ParameterizedTest
    @CsvSource({"seed-mlp, mlp", "small-cnn, cnn", "tiny-encoder, encoder"})
    void eagerAndCompiledMatchPyTorch(String zoo, String reference) {
        ModelZoo.Entry entry = ModelZoo.get(zoo);
        entry.block().loadParameters(ReferenceModels.weights(reference));
        Map<String, TensorData> inputs = ReferenceModels.inputs(reference);
        TensorData input = inputs.values().iterator().next();
        TensorData expected = ReferenceModels.expected(reference).values().iterator().next();

        float[] eager = entry.block().forward(Tensor.of(input)).toFloatArray();
        assertClose(eager, expected, zoo + " eager");
        try (CompiledModel model = Kiln.compile(entry.block(), entry.signature())) {
            float[] compiled = model.run(Map.of(entry.signature().inputs().get(0).name(), input)).values().iterator().next().toFloatArray();
            assertClose(compiled, expected, zoo + " compiled");
            if (zoo.equals("small-cnn")) {
                // BatchNorm2d, (x - mean) / sqrt(var + eps) * g + b, is folded into the convolution before it.
                org.assertj.core.api.Assertions.assertThat(model.graph().opCounts()).as(model.graph().toString())
                        .doesNotContainKeys("sub", "div", "mul", "add", "sqrt");
            }
        }
    }

    private static void assertClose(float[] actual, TensorData expected, String what) {
        float[] e = expected.toFloatArray();
        org.assertj.core.api.Assertions.assertThat(actual).as(what).hasSameSizeAs(e);
        for (int i = 0; i < e.length; i++) {
            org.assertj.core.api.Assertions.assertThat((double) actual[i]).as("%s element %d", what, i)
                    .isCloseTo(e[i], org.assertj.core.data.Offset.offset(1e-5 + 1e-4 * Math.abs(e[i])));
        }
    }
}
