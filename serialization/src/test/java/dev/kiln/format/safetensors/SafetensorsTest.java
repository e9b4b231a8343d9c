package dev.kiln.format.safetensors;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;
import dev.kiln.engine.tensor.TensorData;
import dev.kiln.format.ReferenceModels;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class SafetensorsTest {
    @Test
    void readsPyTorchFilesByNameWithShapes() {
        Map<String, TensorData> weights = ReferenceModels.weights("mlp");
        assertThat(weights.keySet()).containsExactly("0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias");
        assertThat(weights.get("0.weight").shape()).containsExactly(256, 512);
        assertThat(weights.get("4.bias").shape()).containsExactly(2);
    }

    @Test
    void writesTheLayoutByteForByte() throws Exception {
        // Worked out by hand: header JSON, padded with spaces to a multiple of 8, then 2 floats little-endian.
        Map<String, TensorData> tensors = new LinkedHashMap<>();
        tensors.put("a", TensorData.ofFloats(new long[] {2}, new float[] {1f, -2f}));
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        Safetensors.write(tensors, out);
        byte[] bytes = out.toByteArray();
        String json = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
        int padded = (json.length() + 7) / 8 * 8;
        ByteBuffer b = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        assertThat(b.getLong(0)).isEqualTo(padded);
        assertThat(new String(bytes, 8, padded, StandardCharsets.UTF_8).trim()).isEqualTo(json);
        assertThat(b.getFloat(8 + padded)).isEqualTo(1f);
        assertThat(b.getFloat(8 + padded + 4)).isEqualTo(-2f);
        assertThat(bytes).hasSize(8 + padded + 8);
    }

    @Test
    void roundTripsThroughAFile(@TempDir Path dir) {
        Map<String, TensorData> tensors = ReferenceModels.inputs("encoder");
        Path file = dir.resolve("t.safetensors");
        Safetensors.write(tensors, file);
        Map<String, TensorData> back = Safetensors.read(file);
        assertThat(back.get("tokens").toFloatArray()).containsExactly(tensors.get("tokens").toFloatArray());
    }

    @Test
    void refusesTruncatedAndInconsistentFiles(@TempDir Path dir) throws Exception {
        Path good = dir.resolve("good.safetensors");
        Safetensors.write(Map.of("w", TensorData.ofFloats(new long[] {4}, new float[] {1, 2, 3, 4})), good);
        byte[] bytes = Files.readAllBytes(good);

        Path truncated = dir.resolve("truncated.safetensors");
        Files.write(truncated, java.util.Arrays.copyOf(bytes, bytes.length - 4));
        assertThatThrownBy(() -> Safetensors.read(truncated))
                .isInstanceOf(KilnException.class)
                .hasMessageContaining(truncated.toString())
                .hasMessageContaining("tensor 'w' data_offsets [0, 16] fall outside the 12 data bytes")
                .extracting(e -> ((KilnException) e).code()).isEqualTo(ErrorCode.CORRUPT_MODEL);

        Path hugeHeader = dir.resolve("header.safetensors");
        byte[] flipped = bytes.clone();
        flipped[7] = 0x7f;
        Files.write(hugeHeader, flipped);
        assertThatThrownBy(() -> Safetensors.read(hugeHeader)).hasMessageContaining("header length").hasMessageContaining(hugeHeader.toString());

        Path tiny = dir.resolve("tiny.safetensors");
        Files.write(tiny, new byte[] {1, 2, 3});
        assertThatThrownBy(() -> Safetensors.read(tiny)).hasMessageContaining("shorter than the 8-byte header length");
    }
}
