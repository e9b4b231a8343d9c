package dev.kiln.format.safetensors;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;
import dev.kiln.engine.tensor.DType;
import dev.kiln.engine.tensor.TensorData;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.Channels;
import java.nio.channels.FileChannel;
import java.nio.channels.WritableByteChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The safetensors format (the layout PyTorch, numpy and Rust tools share): 8 bytes little-endian header length N,
 * N bytes of JSON {@code {"name": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, "__metadata__": {...}}},
 * then the raw little-endian data, offsets relative to the byte after the header.
 * <p>
 * Reading validates everything before returning and never copies tensor data: tensors are views of the given buffer
 * (memory-mapped for files). Every error names the source and what is wrong.
 */
public final class Safetensors {
    /** Refuse headers larger than this (the format's reference implementation uses the same bound). */
    public static final long MAX_HEADER_BYTES = 100L << 20;
    private static final ObjectMapper JSON = new ObjectMapper();

    private Safetensors() {
    }

    /** The tensors of a file, memory-mapped (the file can be larger than 2 GiB; each tensor must be under 2 GiB). */
    public static Map<String, TensorData> read(Path file) {
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
            long size = channel.size();
            if (size < 8) {
                throw corrupt(file.toString(), "file is %d bytes, shorter than the 8-byte header length", size);
            }
            ByteBuffer lengthBytes = channel.map(FileChannel.MapMode.READ_ONLY, 0, 8).order(ByteOrder.LITTLE_ENDIAN);
            long headerLength = lengthBytes.getLong(0);
            checkHeaderLength(file.toString(), headerLength, size);
            ByteBuffer header = channel.map(FileChannel.MapMode.READ_ONLY, 8, headerLength);
            long dataStart = 8 + headerLength;
            List<Entry> entries = parseHeader(file.toString(), header, size - dataStart);
            Map<String, TensorData> out = new LinkedHashMap<>();
            for (Entry e : entries) {
                long bytes = e.end - e.begin;
                if (bytes > Integer.MAX_VALUE) {
                    throw KilnException.of(ErrorCode.UNSUPPORTED_OP, "%s: tensor '%s' is %d bytes; Kiln supports tensors up to 2 GiB each",
                            file, e.name, bytes);
                }
                ByteBuffer data = channel.map(FileChannel.MapMode.READ_ONLY, dataStart + e.begin, bytes);
                out.put(e.name, new TensorData(e.dtype, e.shape, data));
            }
            return out;
        } catch (IOException e) {
            throw new KilnException(ErrorCode.IO_ERROR, "Cannot read safetensors file " + file + ": " + e.getMessage(), e);
        }
    }

    /** The tensors in {@code buffer} (views of it, no copy); {@code source} names it in errors. */
    public static Map<String, TensorData> read(ByteBuffer buffer, String source) {
        ByteBuffer b = buffer.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        long size = b.remaining();
        if (size < 8) {
            throw corrupt(source, "%d bytes, shorter than the 8-byte header length", size);
        }
        int start = b.position();
        long headerLength = b.getLong(start);
        checkHeaderLength(source, headerLength, size);
        ByteBuffer header = b.duplicate();
        header.position(start + 8).limit(start + 8 + (int) headerLength);
        long dataStart = 8 + headerLength;
        List<Entry> entries = parseHeader(source, header.slice(), size - dataStart);
        Map<String, TensorData> out = new LinkedHashMap<>();
        for (Entry e : entries) {
            ByteBuffer data = b.duplicate();
            data.position((int) (start + dataStart + e.begin)).limit((int) (start + dataStart + e.end));
            out.put(e.name, new TensorData(e.dtype, e.shape, data.slice()));
        }
        return out;
    }

    private static void checkHeaderLength(String source, long headerLength, long size) {
        if (headerLength <= 0 || headerLength > MAX_HEADER_BYTES || headerLength > size - 8) {
            throw corrupt(source, "header length %d is invalid (file is %d bytes, header limit %d)", headerLength, size, MAX_HEADER_BYTES);
        }
    }

    private record Entry(String name, DType dtype, long[] shape, long begin, long end) { }

    private static List<Entry> parseHeader(String source, ByteBuffer header, long dataBytes) {
        byte[] bytes = new byte[header.remaining()];
        header.duplicate().get(bytes);
        JsonNode root;
        try {
            root = JSON.readTree(new String(bytes, StandardCharsets.UTF_8).trim());
        } catch (JsonProcessingException e) {
            throw corrupt(source, "header is not valid JSON (%s)", e.getOriginalMessage());
        }
        if (root == null || !root.isObject()) {
            throw corrupt(source, "header is not a JSON object");
        }
        List<Entry> entries = new ArrayList<>();
        Iterator<Map.Entry<String, JsonNode>> fields = root.fields();
        while (fields.hasNext()) {
            Map.Entry<String, JsonNode> field = fields.next();
            String name = field.getKey();
            if (name.equals("__metadata__")) {
                continue;
            }
            JsonNode node = field.getValue();
            if (!node.isObject() || !node.path("dtype").isTextual() || !node.path("shape").isArray() || !node.path("data_offsets").isArray()
                    || node.path("data_offsets").size() != 2) {
                throw corrupt(source, "tensor '%s' needs dtype, shape and data_offsets [begin, end]", name);
            }
            DType dtype;
            try {
                dtype = DType.fromSafetensorsName(node.get("dtype").asText());
            } catch (KilnException e) {
                throw corrupt(source, "tensor '%s': %s", name, e.getMessage());
            }
            long[] shape = new long[node.get("shape").size()];
            long elements = 1;
            for (int i = 0; i < shape.length; i++) {
                JsonNode d = node.get("shape").get(i);
                if (!d.canConvertToLong() || d.asLong() < 0) {
                    throw corrupt(source, "tensor '%s' has an invalid dimension %s", name, d);
                }
                shape[i] = d.asLong();
                elements = Math.multiplyExact(elements, shape[i]);
            }
            JsonNode begin = node.get("data_offsets").get(0);
            JsonNode end = node.get("data_offsets").get(1);
            if (!begin.canConvertToLong() || !end.canConvertToLong()) {
                throw corrupt(source, "tensor '%s' has non-integer data_offsets", name);
            }
            long b = begin.asLong();
            long e = end.asLong();
            if (b < 0 || e < b || e > dataBytes) {
                throw corrupt(source, "tensor '%s' data_offsets [%d, %d] fall outside the %d data bytes", name, b, e, dataBytes);
            }
            long needed = elements * dtype.byteSize();
            if (e - b != needed) {
                throw corrupt(source, "tensor '%s' %s %s needs %d bytes, found %d", name, dtype, java.util.Arrays.toString(shape), needed, e - b);
            }
            entries.add(new Entry(name, dtype, shape, b, e));
        }
        return entries;
    }

    /** Writes {@code tensors} in safetensors layout (tensors in the given order, header padded to 8 bytes). */
    public static void write(Map<String, TensorData> tensors, OutputStream out) throws IOException {
        write(tensors, Map.of(), out);
    }

    public static void write(Map<String, TensorData> tensors, Map<String, String> metadata, OutputStream out) throws IOException {
        ObjectNode header = JSON.createObjectNode();
        if (!metadata.isEmpty()) {
            ObjectNode meta = header.putObject("__metadata__");
            metadata.forEach(meta::put);
        }
        long offset = 0;
        for (Map.Entry<String, TensorData> e : tensors.entrySet()) {
            TensorData t = e.getValue();
            ObjectNode node = header.putObject(e.getKey());
            node.put("dtype", t.dtype().safetensorsName());
            ArrayNode shape = node.putArray("shape");
            for (long d : t.shape()) {
                shape.add(d);
            }
            long bytes = t.bytes().remaining();
            node.putArray("data_offsets").add(offset).add(offset + bytes);
            offset += bytes;
        }
        byte[] json = JSON.writeValueAsBytes(header);
        int padded = (json.length + 7) / 8 * 8;
        ByteBuffer prefix = ByteBuffer.allocate(8 + padded).order(ByteOrder.LITTLE_ENDIAN);
        prefix.putLong(padded).put(json);
        while (prefix.hasRemaining()) {
            prefix.put((byte) ' ');
        }
        out.write(prefix.array());
        WritableByteChannel channel = Channels.newChannel(out);
        for (TensorData t : tensors.values()) {
            ByteBuffer data = t.bytes();
            while (data.hasRemaining()) {
                channel.write(data);
            }
        }
        out.flush();
    }

    public static void write(Map<String, TensorData> tensors, Path file) {
        try (OutputStream out = Files.newOutputStream(file)) {
            write(tensors, out);
        } catch (IOException e) {
            throw new KilnException(ErrorCode.IO_ERROR, "Cannot write safetensors file " + file + ": " + e.getMessage(), e);
        }
    }

    private static KilnException corrupt(String source, String format, Object... args) {
        return new KilnException(ErrorCode.CORRUPT_MODEL, "Corrupt safetensors " + source + ": " + String.format(format, args));
    }
}
