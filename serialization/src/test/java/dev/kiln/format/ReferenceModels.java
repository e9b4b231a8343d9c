package dev.kiln.format;

import dev.kiln.engine.tensor.TensorData;
import dev.kiln.format.safetensors.Safetensors;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Map;

/** The PyTorch reference models in {@code ../shared/models} (the build passes their folder as kiln.models.dir). */
public final class ReferenceModels {
    private ReferenceModels() {
    }

    public static Path dir(String model) {
        String root = System.getProperty("kiln.models.dir", "../shared/models");
        Path dir = Paths.get(root, model);
        if (!Files.isDirectory(dir)) {
            throw new IllegalStateException("Reference model folder not found: " + dir.toAbsolutePath()
                    + " (expected ../shared/models beside the checkout)");
        }
        return dir;
    }

    public static Map<String, TensorData> weights(String model) {
        return Safetensors.read(dir(model).resolve("weights.safetensors"));
    }

    public static Map<String, TensorData> inputs(String model) {
        return Safetensors.read(dir(model).resolve("inputs.safetensors"));
    }

    public static Map<String, TensorData> expected(String model) {
        return Safetensors.read(dir(model).resolve("expected.safetensors"));
    }

    /** allclose against PyTorch's output: |actual - expected| <= 1e-6 + 1e-5 * |expected| for every element. */
    public static void assertAllClose(float[] actual, TensorData expected) {
        float[] e = expected.toFloatArray();
        org.assertj.core.api.Assertions.assertThat(actual).hasSameSizeAs(e);
        for (int i = 0; i < e.length; i++) {
            double tolerance = 1e-6 + 1e-5 * Math.abs(e[i]);
            org.assertj.core.api.Assertions.assertThat((double) actual[i]).as("element %d", i)
                    .isCloseTo(e[i], org.assertj.core.data.Offset.offset(tolerance));
        }
    }
}
