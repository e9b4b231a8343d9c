package dev.kiln.format.kiln;

import dev.kiln.engine.Kiln;
import dev.kiln.engine.exec.CompiledModel;
import dev.kiln.engine.exec.Validator;
import dev.kiln.engine.tensor.Tensor;
import dev.kiln.engine.tensor.TensorData;
import dev.kiln.engine.zoo.ModelZoo;
import dev.kiln.format.ReferenceModels;
import dev.kiln.format.safetensors.Safetensors;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Files written by this format version, checked in: every later reader must keep reading them and produce the same
 * outputs. {@code seed-mlp.kiln} holds PyTorch's weights and is checked against PyTorch's outputs; {@code small.kiln}
 * (dense, gelu, reshape/transpose, tanh, constants, softmax) against the eager outputs recorded when it was written.
 * Regenerate (only when starting a new format version) with -Dkiln.writeFixtures=true.
 */
class FixturesTest {
    private static final Path DIR = Path.of(System.getProperty("kiln.test.resources", "src/test/resources"), "fixtures", "format-1.0");

    @Test
    void fixturesOfFormat10StillReadAndReproduceTheirOutputs() throws Exception {
        if (Boolean.getBoolean("kiln.writeFixtures")) {
            write();
        }
        KilnFormat.ModelFile mlp = KilnFormat.read(DIR.resolve("seed-mlp.kiln"));
        assertThat(mlp.formatVersion()).isEqualTo("1.0");
        assertThat(mlp.contentHash()).isEqualTo(Files.readString(DIR.resolve("seed-mlp.content-hash")).strip());
        try (CompiledModel model = mlp.toCompiledModel()) {
            ReferenceModels.assertAllClose(model.run(ReferenceModels.inputs("mlp")).get("y").toFloatArray(), ReferenceModels.expected("mlp").get("y"));
        }

        KilnFormat.ModelFile small = KilnFormat.read(DIR.resolve("small.kiln"));
        Map<String, TensorData> inputs = Safetensors.read(DIR.resolve("small-inputs.safetensors"));
        Map<String, TensorData> expected = Safetensors.read(DIR.resolve("small-expected.safetensors"));
        try (CompiledModel model = small.toCompiledModel()) {
            dev.kiln.engine.TestAccess.assertAllClose(model.run(inputs).get("y").toFloatArray(), expected.get("y").toFloatArray(), 1e-6, 1e-7, "small.kiln");
        }
    }

    private static void write() throws Exception {
        Files.createDirectories(DIR);
        ModelZoo.Entry entry = ModelZoo.get("seed-mlp");
        entry.block().loadParameters(ReferenceModels.weights("mlp"));
        try (CompiledModel model = Kiln.compile(entry.block(), entry.signature())) {
            var report = Validator.validate(entry.block(), model, List.of(ReferenceModels.inputs("mlp")));
            KilnFormat.write(model, entry.name(), report, DIR.resolve("seed-mlp.kiln"));
        }
        Files.writeString(DIR.resolve("seed-mlp.content-hash"), KilnFormat.read(DIR.resolve("seed-mlp.kiln")).contentHash() + "\n");

        var block = KilnFiles.smallBlock();
        float[] x = new float[5 * 6];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) Math.sin(i * 0.7) * 2;
        }
        TensorData input = TensorData.ofFloats(new long[] {5, 6}, x);
        TensorData eager = block.forward(Tensor.of(input)).toData();
        try (CompiledModel model = Kiln.compile(block, KilnFiles.SMALL_SIGNATURE)) {
            var report = Validator.validate(block, model, List.of(Map.of("x", input)));
            KilnFormat.write(model, "small", report, DIR.resolve("small.kiln"));
        }
        Safetensors.write(Map.of("x", input), DIR.resolve("small-inputs.safetensors"));
        Safetensors.write(Map.of("y", eager), DIR.resolve("small-expected.safetensors"));
    }
}
