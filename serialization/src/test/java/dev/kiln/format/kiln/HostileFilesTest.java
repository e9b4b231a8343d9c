package dev.kiln.format.kiln;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;
import org.assertj.core.api.AbstractThrowableAssert;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.zip.ZipEntry;
import java.util.zip.ZipOutputStream;

import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** Each kind of bad or hostile file named in the format issue is refused with a KilnException naming the file. */
class HostileFilesTest {
    private static final byte[] GOOD = KilnFiles.smallModelBytes();
    private static final String NAME = "hostile.kiln";

    private static AbstractThrowableAssert<?, ? extends Throwable> refused(byte[] file) {
        return assertThatThrownBy(() -> KilnFormat.read(file, NAME))
                .isInstanceOf(KilnException.class)
                .hasMessageContaining(NAME);
    }

    @Test
    void truncatedAtEveryByte() {
        for (int length = 0; length < GOOD.length; length++) {
            byte[] truncated = Arrays.copyOf(GOOD, length);
            refused(truncated);
        }
    }

    @Test
    void everySingleByteFlipped() {
        for (int i = 0; i < GOOD.length; i++) {
            byte[] flipped = GOOD.clone();
            flipped[i] ^= (byte) 0x01;
            refused(flipped);
            flipped[i] ^= (byte) 0xFF;
            refused(flipped);
        }
    }

    @Test
    void aSafetensorsHeaderClaimingHugeShapesOrOffsetsBeyondTheFile() {
        refused(weightsHeaderEdit("\"shape\":[8,6]", "\"shape\":[800000000000,6]"))
                .hasMessageContaining("needs 19200000000000 bytes, found 192").extracting(e -> ((KilnException) e).code()).isEqualTo(ErrorCode.CORRUPT_MODEL);
        refused(weightsHeaderEdit("\"shape\":[8,6]", "\"shape\":[9223372036854775807,9223372036854775807]"))
                .hasMessageContaining("impossibly large");
        refused(withWeightsHeader("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8000000000]}}", 8))
                .hasMessageContaining("fall outside");
    }

    @Test
    void negativeOrOverlappingOffsetsAndDuplicateNames() {
        refused(withWeightsHeader("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", 8)).hasMessageContaining("fall outside");
        refused(withWeightsHeader("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                + "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12)).hasMessageContaining("must not overlap");
        refused(withWeightsHeader("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                + "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 16)).hasMessageContaining("Duplicate field 'a'");
        Map<String, byte[]> entries = KilnFiles.entries(GOOD);
        Map<String, byte[]> duplicate = new LinkedHashMap<>();
        duplicate.put(KilnFormat.MANIFEST, entries.get(KilnFormat.MANIFEST));
        duplicate.put(KilnFormat.GRAPH, entries.get(KilnFormat.GRAPH));
        duplicate.put(KilnFormat.GRAPH + " ", entries.get(KilnFormat.GRAPH));
        refused(KilnFiles.container(duplicate)).hasMessageContaining("unexpected zip entry");
    }

    @Test
    void entryNamesWithDotDotOrAbsolutePaths() {
        for (String evil : new String[] {"../manifest.json", "/etc/passwd", "graph.json/../../x"}) {
            Map<String, byte[]> entries = new LinkedHashMap<>();
            entries.put(evil, "{}".getBytes(StandardCharsets.UTF_8));
            entries.put(KilnFormat.GRAPH, KilnFiles.entries(GOOD).get(KilnFormat.GRAPH));
            entries.put(KilnFormat.WEIGHTS, KilnFiles.entries(GOOD).get(KilnFormat.WEIGHTS));
            refused(KilnFiles.container(entries)).hasMessageContaining("unexpected zip entry '" + evil + "'");
        }
    }

    @Test
    void aZipBomb() throws Exception {
        // 1 GiB of zeros deflated to about 1 MB: a reader that inflated it would blow up; Kiln only accepts stored entries.
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try (ZipOutputStream zip = new ZipOutputStream(out)) {
            zip.putNextEntry(new ZipEntry(KilnFormat.MANIFEST));
            byte[] zeros = new byte[1 << 20];
            for (int i = 0; i < 1024; i++) {
                zip.write(zeros);
            }
            zip.closeEntry();
        }
        refused(out.toByteArray()).extracting(e -> ((KilnException) e).code()).isEqualTo(ErrorCode.CORRUPT_MODEL);
    }

    @Test
    void anUnknownDtype() {
        refused(KilnFiles.rewriteText(GOOD, KilnFormat.WEIGHTS, "\"dtype\":\"F32\"", "\"dtype\":\"F13\"")).hasMessageContaining("F13");
        refused(KilnFiles.rewriteText(GOOD, KilnFormat.GRAPH, "\"dtype\" : \"float32\"", "\"dtype\" : \"float13\"")).hasMessageContaining("unknown dtype 'float13'");
    }

    @Test
    void anAttributeThisReaderDoesNotKnow() {
        // Ignoring it could change the results (a newer writer's fused activation, say): refused by name instead.
        refused(KilnFiles.rewriteText(GOOD, KilnFormat.GRAPH, "\"activation\" :", "\"epilogue\" :"))
                .hasMessageContaining("op attributes this reader does not know").hasMessageContaining("'epilogue' of dense");
    }

    @Test
    void aGraphReferencingAMissingValueOrParameter() {
        refused(KilnFiles.rewriteText(GOOD, KilnFormat.GRAPH, "\"string\" : \"0.weight\"", "\"string\" : \"9.weight\""))
                .hasMessageContaining("parameter '9.weight' is missing from the weights");
        refused(KilnFiles.rewriteText(GOOD, KilnFormat.GRAPH, "\"value\" : 0", "\"value\" : 9999"))
                .hasMessageContaining("9999");
    }

    @Test
    void aCycle() {
        // The first dense node reads the value defined by the last node: a cycle once execution order is followed.
        String graph = new String(KilnFiles.entries(GOOD).get(KilnFormat.GRAPH), StandardCharsets.UTF_8);
        int lastValue = graph.split("\"id\"").length - 2;
        refused(KilnFiles.rewriteText(GOOD, KilnFormat.GRAPH, "\"inputs\" : [ 0, ", "\"inputs\" : [ " + lastValue + ", "))
                .hasMessageContaining("before it is defined");
    }

    @Test
    void notAZipAtAll() {
        refused("just some text, long enough to look like it could have a trailer at the end of it ....".repeat(3).getBytes(StandardCharsets.UTF_8))
                .hasMessageContaining("no canonical zip end records");
        refused(new byte[0]).hasMessageContaining("too short");
    }

    /** A file whose weights' safetensors header has {@code from} replaced by {@code to} (length prefix kept right). */
    private static byte[] weightsHeaderEdit(String from, String to) {
        return KilnFiles.rewrite(GOOD, KilnFormat.WEIGHTS, old -> {
            ByteBuffer in = ByteBuffer.wrap(old).order(ByteOrder.LITTLE_ENDIAN);
            int headerLength = (int) in.getLong(0);
            String json = new String(old, 8, headerLength, StandardCharsets.UTF_8);
            if (!json.contains(from)) {
                throw new AssertionError("weights header lacks " + from + ": " + json);
            }
            byte[] j = json.replace(from, to).getBytes(StandardCharsets.UTF_8);
            ByteBuffer b = ByteBuffer.allocate(8 + j.length + old.length - 8 - headerLength).order(ByteOrder.LITTLE_ENDIAN);
            b.putLong(j.length).put(j).put(old, 8 + headerLength, old.length - 8 - headerLength);
            return b.array();
        });
    }

    /** A file whose weights entry is a safetensors header {@code json} followed by {@code dataBytes} zero bytes. */
    private static byte[] withWeightsHeader(String json, int dataBytes) {
        return KilnFiles.rewrite(GOOD, KilnFormat.WEIGHTS, old -> {
            byte[] j = json.getBytes(StandardCharsets.UTF_8);
            ByteBuffer b = ByteBuffer.allocate(8 + j.length + dataBytes).order(ByteOrder.LITTLE_ENDIAN);
            b.putLong(j.length).put(j);
            return b.array();
        });
    }
}
