package dev.kiln.format.kiln;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.Kiln;
import dev.kiln.engine.KilnException;
import dev.kiln.engine.exec.CompiledModel;
import dev.kiln.engine.exec.Validator;
import dev.kiln.engine.ir.Signature;
import dev.kiln.engine.nn.Block;
import dev.kiln.engine.nn.Dense;
import dev.kiln.engine.nn.LambdaBlock;
import dev.kiln.engine.nn.Sequential;
import dev.kiln.engine.ops.Activation;
import dev.kiln.engine.tensor.Shape;
import dev.kiln.engine.tensor.Tensor;
import dev.kiln.engine.tensor.TensorData;
import dev.kiln.engine.zoo.ModelZoo;
import dev.kiln.format.ReferenceModels;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class KilnFormatTest {
    private static Path writeSeedMlp(Path dir) {
        ModelZoo.Entry entry = ModelZoo.get("seed-mlp");
        entry.block().loadParameters(ReferenceModels.weights("mlp"));
        Path file = dir.resolve("mlp.kiln");
        try (CompiledModel model = Kiln.compile(entry.block(), entry.signature())) {
            var report = Validator.validate(entry.block(), model, List.of(ReferenceModels.inputs("mlp")));
            KilnFormat.write(model, entry.name(), report, file);
        }
        return file;
    }

    @Test
    void theSeedMlpReadsBackAndReproducesPyTorch(@TempDir Path dir) {
        KilnFormat.ModelFile file = KilnFormat.read(writeSeedMlp(dir));
        assertThat(file.name()).isEqualTo("seed-mlp");
        assertThat(file.formatVersion()).isEqualTo("1.1");
        assertThat(file.signature().toString()).isEqualTo("[x: float32[batch, 512]] -> [y: float32[batch, 2]]");
        assertThat(file.validation().path("passed").asBoolean()).isTrue();
        assertThat(file.parameterCount()).isEqualTo(256 * 512 + 256 + 128 * 256 + 128 + 2 * 128 + 2);
        try (CompiledModel model = file.toCompiledModel()) {
            ReferenceModels.assertAllClose(model.run(ReferenceModels.inputs("mlp")).get("y").toFloatArray(), ReferenceModels.expected("mlp").get("y"));
        }
    }

    /** Model kinds: dense stacks, constants and layout ops, several inputs and outputs, an unoptimized graph. */
    @Test
    void everyModelKindRoundTripsAndMatchesEager() {
        Tensor bias = Tensor.of(new long[] {3}, new float[] {1, -2, 0.5f});
        Block twoInOut = new Block() {
            private final Dense dense = addChild("dense", new Dense(3, Activation.SIGMOID, true, 4));

            @Override
            protected List<Tensor> forwardInternal(List<Tensor> inputs) {
                Tensor h = dense.forward(inputs.get(0)).add(bias);
                Tensor joined = Tensor.concat(-1, h, inputs.get(1));
                return List.of(joined.softmax(-1), h.mean(false, -1).reshape(0, 1));
            }
        };
        Signature twoSignature = Signature.builder().input("a", Shape.batched(4)).input("b", Shape.batched(2)).output("p").output("m").build();
        record Kind(String name, Block block, Signature signature) { }
        List<Kind> kinds = List.of(
                new Kind("dense-stack", new Sequential().add(new Dense(5, Activation.RELU, true, 3), new Dense(2)), Signature.builder().input("x", Shape.batched(3)).build()),
                new Kind("small-mixed", KilnFiles.smallBlock(), KilnFiles.SMALL_SIGNATURE),
                new Kind("two-in-two-out", twoInOut, twoSignature),
                new Kind("attention", new LambdaBlock("attn", x -> {
                    Tensor q = x.reshape(0, 2, 3);
                    return q.matmul(q.transpose(0, 2, 1)).softmax(-1).matmul(q).reshape(0, -1);
                }), Signature.builder().input("x", Shape.batched(6)).build()));
        Random random = new Random(5);
        for (Kind kind : kinds) {
            int batch = 3;
            Map<String, TensorData> inputs = new java.util.LinkedHashMap<>();
            List<Tensor> eagerInputs = new java.util.ArrayList<>();
            for (Signature.Spec spec : kind.signature().inputs()) {
                long[] shape = spec.shape().resolve(batch);
                float[] values = new float[(int) TensorData.elementCount(shape)];
                for (int i = 0; i < values.length; i++) {
                    values[i] = (float) random.nextGaussian();
                }
                inputs.put(spec.name(), TensorData.ofFloats(shape, values));
                eagerInputs.add(Tensor.of(shape, values));
            }
            List<Tensor> eager = kind.block().forwardAll(eagerInputs.toArray(new Tensor[0]));
            byte[] bytes;
            try (CompiledModel model = Kiln.compile(kind.block(), kind.signature())) {
                bytes = KilnFiles.toBytes(model, kind.name());
            }
            KilnFormat.ModelFile file = KilnFormat.read(bytes, kind.name() + ".kiln");
            assertThat(file.signature().inputs()).hasSize(kind.signature().inputs().size());
            try (CompiledModel loaded = file.toCompiledModel()) {
                Map<String, TensorData> out = loaded.run(inputs);
                int i = 0;
                for (TensorData o : out.values()) {
                    dev.kiln.engine.TestAccess.assertAllClose(o.toFloatArray(), eager.get(i++).toFloatArray(), 1e-5, 1e-6, kind.name());
                }
            }
        }
    }

    @Test
    void theContentHashIsStableAndFollowsTheWeights() {
        byte[] a = KilnFiles.smallModelBytes();
        byte[] b = KilnFiles.smallModelBytes();
        String hashA = KilnFormat.read(a, "a").contentHash();
        assertThat(KilnFormat.read(b, "b").contentHash()).isEqualTo(hashA).hasSize(64);
        Sequential other = KilnFiles.smallBlock();
        other.setSeed(12);
        try (CompiledModel model = Kiln.compile(other, KilnFiles.SMALL_SIGNATURE)) {
            assertThat(KilnFormat.read(KilnFiles.toBytes(model, "small"), "c").contentHash()).isNotEqualTo(hashA);
        }
    }

    @Test
    void anotherMajorVersionIsRefusedNamingBoth() {
        byte[] newer = KilnFiles.rewriteText(KilnFiles.smallModelBytes(), KilnFormat.MANIFEST, "\"format_version\" : \"1.1\"", "\"format_version\" : \"2.3\"");
        assertThatThrownBy(() -> KilnFormat.read(newer, "newer.kiln"))
                .isInstanceOf(KilnException.class)
                .hasMessage("Cannot read newer.kiln: model format version 2.3; this reader supports 1.x")
                .extracting(e -> ((KilnException) e).code()).isEqualTo(ErrorCode.UNSUPPORTED_VERSION);
    }

    @Test
    void anyMinorVersionOfTheMajorIsRead() {
        byte[] minor = KilnFiles.rewriteText(KilnFiles.smallModelBytes(), KilnFormat.MANIFEST, "\"format_version\" : \"1.1\"", "\"format_version\" : \"1.7\"");
        assertThat(KilnFormat.read(minor, "minor.kiln").formatVersion()).isEqualTo("1.7");
    }

    @Test
    void anUnknownOpIsRefusedAtLoadNamingItsNode() {
        byte[] file = KilnFiles.rewriteText(KilnFiles.smallModelBytes(), KilnFormat.GRAPH, "\"op\" : \"softmax\"", "\"op\" : \"fancy_softmax\"");
        assertThatThrownBy(() -> KilnFormat.read(file, "future.kiln"))
                .isInstanceOf(KilnException.class)
                .hasMessageContaining("future.kiln uses ops this reader does not know: 'fancy_softmax' at node '3'")
                .extracting(e -> ((KilnException) e).code()).isEqualTo(ErrorCode.UNSUPPORTED_OP);
    }

    @Test
    void aChecksumMismatchNamesTheEntryAndBothSums(@TempDir Path dir) throws Exception {
        byte[] file = KilnFiles.smallModelBytes();
        var entries = KilnFiles.entries(file);
        String sha = KilnFormat.sha(entries.get(KilnFormat.GRAPH));
        byte[] tampered = KilnFiles.rewriteText(file, KilnFormat.MANIFEST, sha, "0".repeat(64));
        Path path = dir.resolve("tampered.kiln");
        Files.write(path, tampered);
        assertThatThrownBy(() -> KilnFormat.read(path))
                .isInstanceOf(KilnException.class)
                .hasMessage("Corrupt model " + path + ": graph.json has sha-256 " + sha + " but the manifest says " + "0".repeat(64));
    }
}
