package dev.kiln.jobs;

import dev.kiln.engine.tensor.TensorData;
import dev.kiln.format.safetensors.Safetensors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

class KilnCliTest {
    private static final Path MLP = Paths.get(System.getProperty("kiln.models.dir", "../shared/models"), "mlp");

    /** A command's exit code and what it printed. */
    private record Result(int code, String out, String err) { }

    private static Result kiln(String... args) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int code = KilnCli.run(args, new PrintStream(out, true, StandardCharsets.UTF_8), new PrintStream(err, true, StandardCharsets.UTF_8));
        return new Result(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    @Test
    void compileThenRunReproducesPyTorch(@TempDir Path dir) {
        Path model = dir.resolve("mlp.kiln");
        Result compile = kiln("compile", "--model", "zoo:seed-mlp", "--weights", MLP.resolve("weights.safetensors").toString(), "--out", model.toString());
        assertThat(compile.code()).as(compile.err()).isZero();
        assertThat(compile.out()).contains("PASSED").contains("Wrote file:" + model);

        Path output = dir.resolve("y.safetensors");
        Result run = kiln("run", "--model", model.toString(), "--input", MLP.resolve("inputs.safetensors").toString(), "--output", output.toString());
        assertThat(run.code()).as(run.err()).isZero();
        assertThat(run.out()).contains("y: float32 [8, 2]");

        float[] actual = Safetensors.read(output).get("y").toFloatArray();
        TensorData expected = Safetensors.read(MLP.resolve("expected.safetensors")).get("y");
        float[] e = expected.toFloatArray();
        for (int i = 0; i < e.length; i++) {
            assertThat(actual[i]).as("element %d", i).isCloseTo(e[i], within((float) (1e-6 + 1e-5 * Math.abs(e[i]))));
        }
    }

    @Test
    void inspectPrintsIdentityOpsParametersAndWritesDot(@TempDir Path dir) throws Exception {
        Path model = dir.resolve("mlp.kiln");
        assertThat(kiln("compile", "--model", "zoo:seed-mlp", "--weights", MLP.resolve("weights.safetensors").toString(), "--out", model.toString()).code()).isZero();
        Path dot = dir.resolve("mlp.dot");
        Result r = kiln("inspect", "--model", model.toString(), "--dot", dot.toString());
        assertThat(r.code()).as(r.err()).isZero();
        assertThat(r.out())
                .contains("Model        seed-mlp")
                .contains("Format       kiln 1.1")
                .containsPattern("Content hash [0-9a-f]{64}")
                .contains("Signature    [x: float32[batch, 512]] -> [y: float32[batch, 2]]")
                // 256*512 + 256 + 128*256 + 128 + 2*128 + 2 = 164,482 floats of 4 bytes
                .contains("Parameters   164,482 values, 657,928 bytes, 6 tensors")
                .contains("Ops          {dense=3, parameter=6}")
                .contains("Validation   passed");
        assertThat(Files.readString(dot)).startsWith("digraph kiln {").contains("dense").contains("0.weight");
    }

    @Test
    void compileWithoutValidationAndRefusingToOverwrite(@TempDir Path dir) {
        Path model = dir.resolve("m.kiln");
        Result first = kiln("compile", "--model", "zoo:seed-mlp", "--out", model.toString(), "--no-validate");
        assertThat(first.code()).as(first.err()).isZero();
        assertThat(first.out()).doesNotContain("Validation");
        Result again = kiln("compile", "--model", "zoo:seed-mlp", "--out", model.toString(), "--no-validate");
        assertThat(again.code()).isEqualTo(1);
        assertThat(again.err()).contains("already exists; pass overwrite to replace it");
        assertThat(kiln("compile", "--model", "zoo:seed-mlp", "--out", model.toString(), "--no-validate", "--overwrite").code()).isZero();
        assertThat(kiln("inspect", "--model", model.toString()).out()).contains("Validation   none recorded");
    }

    @Test
    void aCorruptModelIsOneLineWithoutAStackTrace(@TempDir Path dir) throws Exception {
        Path model = dir.resolve("bad.kiln");
        Files.write(model, "not a model".getBytes(StandardCharsets.UTF_8));
        Result r = kiln("inspect", "--model", model.toString());
        assertThat(r.code()).isEqualTo(1);
        assertThat(r.err().strip()).startsWith("kiln inspect: Corrupt model").contains(model.toString()).doesNotContain("\tat ");
        assertThat(r.err().strip().lines()).hasSize(1);
    }

    @Test
    void compileFromOnnxThenRunReproducesPyTorch(@TempDir Path dir) {
        Path model = dir.resolve("mlp-onnx.kiln");
        Result compile = kiln("compile", "--model", MLP.resolve("model.onnx").toString(), "--out", model.toString());
        assertThat(compile.code()).as(compile.err()).isZero();
        assertThat(compile.out()).contains("unoptimized vs optimized").contains("PASSED");
        Path output = dir.resolve("y.safetensors");
        assertThat(kiln("run", "--model", model.toString(), "--input", MLP.resolve("inputs.safetensors").toString(), "--output", output.toString()).code()).isZero();
        float[] actual = Safetensors.read(output).get("y").toFloatArray();
        float[] e = Safetensors.read(MLP.resolve("expected.safetensors")).get("y").toFloatArray();
        for (int i = 0; i < e.length; i++) {
            assertThat(actual[i]).as("element %d", i).isCloseTo(e[i], within((float) (1e-6 + 1e-4 * Math.abs(e[i]))));
        }
        Result validate = kiln("validate", "--model", model.toString());
        assertThat(validate.code()).as(validate.err()).isZero();
        assertThat(validate.out()).contains("onnx:").contains("PASSED");
        for (String other : new String[] {"cnn", "encoder"}) {
            Result r = kiln("compile", "--model", MLP.resolveSibling(other).resolve("model.onnx").toString(), "--out", dir.resolve(other + ".kiln").toString());
            assertThat(r.code()).as(other + ": " + r.err()).isZero();
            assertThat(r.out()).contains("PASSED");
        }
    }

    @Test
    void badArgumentsPrintUsageAndExitTwo() {
        Result unknownOption = kiln("run", "--modle", "x.kiln");
        assertThat(unknownOption.code()).isEqualTo(2);
        assertThat(unknownOption.err()).contains("unknown option --modle").contains("Usage: bin/kiln run");

        Result missing = kiln("compile", "--model", "zoo:seed-mlp");
        assertThat(missing.code()).isEqualTo(2);
        assertThat(missing.err()).contains("missing required option --out");

        Result badNumber = kiln("bench", "--batch", "1,zero");
        assertThat(badNumber.code()).isEqualTo(2);
        assertThat(badNumber.err()).contains("--batch must be a comma-separated list of positive integers");

        assertThat(kiln("frobnicate").code()).isEqualTo(2);
        assertThat(kiln().code()).isEqualTo(2);
    }

    @Test
    void aMissingInputIsOneLineNamingThePathAndExitsOne(@TempDir Path dir) {
        Path absent = dir.resolve("absent.kiln");
        Result r = kiln("run", "--model", absent.toString(), "--input", "in.safetensors", "--output", dir.resolve("o").toString());
        assertThat(r.code()).isEqualTo(1);
        assertThat(r.err().strip()).isEqualTo("kiln run: Cannot read model file file:" + absent + ": no such file");
    }

    @Test
    void helpListsCommandsAndEachCommandHasExamples() {
        Result help = kiln("--help");
        assertThat(help.code()).isZero();
        assertThat(help.out()).contains("demo", "compile", "run", "bench", "validate", "inspect", "score");
        assertThat(kiln("inspect", "--help").out()).contains("--dot");
        Result runHelp = kiln("run", "--help");
        assertThat(runHelp.code()).isZero();
        assertThat(runHelp.out()).contains("Example:");
    }

    @Test
    void validateRebuildsTheEagerModelFromTheRecordedSource(@TempDir Path dir) {
        Path model = dir.resolve("mlp.kiln");
        assertThat(kiln("compile", "--model", "zoo:seed-mlp", "--weights", MLP.resolve("weights.safetensors").toString(), "--out", model.toString(),
                "--no-validate").code()).isZero();
        Result r = kiln("validate", "--model", model.toString(), "--samples", "2");
        assertThat(r.code()).as(r.err()).isZero();
        assertThat(r.out()).contains("Model seed-mlp (zoo:seed-mlp").contains("PASSED").contains("2 sample batches");

        Path noSource = dir.resolve("plain.kiln");
        try (var compiled = dev.kiln.engine.Kiln.compile(dev.kiln.engine.zoo.ModelZoo.seedMlp(), dev.kiln.engine.zoo.ModelZoo.get("seed-mlp").signature())) {
            dev.kiln.format.store.ModelStore.withDefaults().save(compiled, "plain", null, noSource.toString(), false);
        }
        Result refused = kiln("validate", "--model", noSource.toString());
        assertThat(refused.code()).isEqualTo(1);
        assertThat(refused.err()).contains("records no source to rebuild");
    }

    @Test
    void peersBenchmarkChecksOutputsAndReportsEachMode(@TempDir Path dir) throws Exception {
        Path json = dir.resolve("peers.json");
        Result r = kiln("bench", "--peers", "--model", MLP.resolve("model.onnx").toString(), "--calls", "20", "--rows", "64", "--batch", "1,8",
                "--threads", "1,2", "--reps", "1", "--json", json.toString());
        assertThat(r.code()).as(r.err()).isZero();
        var root = new com.fasterxml.jackson.databind.ObjectMapper().readTree(Files.readString(json));
        // 2 batches x 2 worker counts x 6 modes; each worker's outputs (the three Kiln modes) were checked against ONNX
        // Runtime's first.
        assertThat(root.path("results")).hasSize(24);
        java.util.Set<String> modes = new java.util.HashSet<>();
        java.util.Set<Integer> threads = new java.util.HashSet<>();
        root.path("results").forEach(result -> {
            modes.add(result.path("mode").asText());
            threads.add(result.path("threads").asInt());
        });
        assertThat(modes).containsExactlyInAnyOrder("eager", "compiled", "compiled-bound", "onnxruntime", "ceiling", "ceiling-onednn");
        assertThat(threads).containsExactlyInAnyOrder(1, 2);
    }

    @Test
    void benchWritesTheDocumentedJson(@TempDir Path dir) throws Exception {
        Path json = dir.resolve("bench.json");
        Path chart = dir.resolve("bench.png");
        Result r = kiln("bench", "--calls", "20", "--rows", "40", "--batch", "1,8", "--reps", "1", "--json", json.toString(), "--chart", chart.toString());
        assertThat(chart).isRegularFile();
        assertThat(Files.readAllBytes(chart)).startsWith((byte) 0x89, (byte) 'P', (byte) 'N', (byte) 'G');
        assertThat(r.code()).as(r.err()).isZero();
        var root = new com.fasterxml.jackson.databind.ObjectMapper().readTree(Files.readString(json));
        assertThat(root.path("results")).hasSize(4);
        for (var result : root.path("results")) {
            assertThat(result.path("mode").asText()).isIn("eager", "compiled");
            assertThat(result.path("batch").asInt()).isIn(1, 8);
            assertThat(result.path("threads").asInt()).isEqualTo(1);
            assertThat(result.path("us_per_call").asDouble()).isPositive();
            assertThat(result.path("rows_per_s").asDouble()).isPositive();
        }
    }
}
