package dev.kiln.format.kiln;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.Kiln;
import dev.kiln.engine.KilnException;
import dev.kiln.engine.exec.CompiledModel;
import dev.kiln.engine.exec.Validator;
import dev.kiln.engine.zoo.ModelZoo;
import dev.kiln.format.ReferenceModels;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

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
    void aWrittenModelReadsBackAndReproducesPyTorch(@TempDir Path dir) {
        KilnFormat.ModelFile file = KilnFormat.read(writeSeedMlp(dir));
        assertThat(file.name()).isEqualTo("seed-mlp");
        assertThat(file.signature().toString()).isEqualTo("[x: float32[batch, 512]] -> [y: float32[batch, 2]]");
        assertThat(file.manifest().path("validation").path("passed").asBoolean()).isTrue();
        try (CompiledModel model = file.toCompiledModel()) {
            ReferenceModels.assertAllClose(model.run(ReferenceModels.inputs("mlp")).get("y").toFloatArray(),
                    ReferenceModels.expected("mlp").get("y"));
        }
    }

    @Test
    void refusesANewerMajorVersionNamingBoth(@TempDir Path dir) throws Exception {
        Path file = writeSeedMlp(dir);
        Path newer = dir.resolve("newer.kiln");
        rewriteManifest(file, newer, "\"format_version\" : \"1.0\"", "\"format_version\" : \"2.3\"");
        assertThatThrownBy(() -> KilnFormat.read(newer))
                .isInstanceOf(KilnException.class)
                .hasMessage("Cannot read " + newer + ": model format version 2.3; this reader supports 1.x")
                .extracting(e -> ((KilnException) e).code()).isEqualTo(ErrorCode.UNSUPPORTED_VERSION);
    }

    @Test
    void refusesAnEntryWhoseChecksumDiffers(@TempDir Path dir) throws Exception {
        Path file = writeSeedMlp(dir);
        byte[] bytes = Files.readAllBytes(file);
        // A flipped byte inside the stored weights: the zip's own CRC catches it.
        byte[] name = "weights.safetensors".getBytes(StandardCharsets.US_ASCII);
        int manifestMention = indexOf(bytes, name, 0);
        int localHeader = indexOf(bytes, name, manifestMention + 1);
        bytes[localHeader + name.length + 5000] ^= 0x55;
        Path damaged = dir.resolve("damaged.kiln");
        Files.write(damaged, bytes);
        assertThatThrownBy(() -> KilnFormat.read(damaged))
                .isInstanceOf(KilnException.class)
                .hasMessageContaining("Corrupt model " + damaged)
                .hasMessageContaining("CRC");

        // A consistent zip whose manifest records another checksum: the sha-256 check names the entry and both sums.
        Path tampered = dir.resolve("tampered.kiln");
        String sha = new com.fasterxml.jackson.databind.ObjectMapper().readTree(manifestOf(file)).path("entries").path("graph.json").path("sha256").asText();
        rewriteManifest(file, tampered, sha, "0".repeat(64));
        assertThatThrownBy(() -> KilnFormat.read(tampered))
                .isInstanceOf(KilnException.class)
                .hasMessage("Corrupt model " + tampered + ": graph.json has sha-256 " + sha + " but the manifest says " + "0".repeat(64));
    }

    private static byte[] manifestOf(Path file) throws Exception {
        try (var zip = new java.util.zip.ZipFile(file.toFile())) {
            return zip.getInputStream(zip.getEntry(KilnFormat.MANIFEST)).readAllBytes();
        }
    }

    private static int indexOf(byte[] haystack, byte[] needle, int from) {
        outer:
        for (int i = from; i <= haystack.length - needle.length; i++) {
            for (int j = 0; j < needle.length; j++) {
                if (haystack[i + j] != needle[j]) {
                    continue outer;
                }
            }
            return i;
        }
        return -1;
    }

    private static void rewriteManifest(Path in, Path out, String from, String to) throws Exception {
        try (var zin = new java.util.zip.ZipInputStream(Files.newInputStream(in));
             var zout = new java.util.zip.ZipOutputStream(Files.newOutputStream(out))) {
            java.util.zip.ZipEntry e;
            while ((e = zin.getNextEntry()) != null) {
                byte[] data = zin.readAllBytes();
                if (e.getName().equals(KilnFormat.MANIFEST)) {
                    String text = new String(data, StandardCharsets.UTF_8);
                    assertThat(text).contains(from);
                    data = text.replace(from, to).getBytes(StandardCharsets.UTF_8);
                }
                zout.putNextEntry(new java.util.zip.ZipEntry(e.getName()));
                zout.write(data);
                zout.closeEntry();
            }
        }
    }
}
