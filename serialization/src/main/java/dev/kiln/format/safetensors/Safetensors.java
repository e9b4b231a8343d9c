package dev.kiln.format.safetensors;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;
import dev.kiln.engine.tensor.DType;
import dev.kiln.engine.tensor.TensorData;
import dev.kiln.format.io.ByteSource;
import dev.kiln.format.io.BytesByteSource;
import dev.kiln.format.io.PathByteSource;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.Channels;
import java.nio.channels.WritableByteChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The safetensors format (the layout PyTorch, numpy and Rust tools share): 8 bytes little-endian header length N,
 * N bytes of JSON {@code {"name": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, "__metadata__": {...}}},
 * then the raw little-endian data, offsets relative to the byte after the header.
 * <p>
 * Reading validates the whole header before touching data (as the format's reference implementation does: offsets
 * must tile the data region exactly, no duplicates, sizes must match shapes) and never copies tensor data onto the
 * heap: tensors are slices of the source (memory-mapped for local files). Every error names the source.
 */
public final class Safetensors {
    /** Refuse headers larger than this (the format's reference implementation uses the same bound). */
    public static final long MAX_HEADER_BYTES = 100L << 20;
    private static final JsonMapper JSON = JsonMapper.builder().enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION).build();

    private Safetensors() {
    }

    /** The tensors of a local file, memory-mapped (the file may exceed 2 GiB; each tensor must be under 2 GiB). */
    public static Map<String, TensorData> read(Path file) {
        try (PathByteSource source = new PathByteSource(file)) {
            return read(source, 0, source.size(), file.toString());
        } catch (IOException e) {
            throw new KilnException(ErrorCode.IO_ERROR, "Cannot read safetensors file " + file + ": " + e.getMessage(), e);
        }
    }

    /** The tensors in {@code bytes}; {@code location} names them in errors. */
    public static Map<String, TensorData> read(byte[] bytes, String location) {
        try {
            return read(new BytesByteSource(bytes, location), 0, bytes.length, location);
        } catch (IOException e) {
            throw new KilnException(ErrorCode.CORRUPT_MODEL, "Corrupt safetensors " + location + ": " + e.getMessage(), e);
        }
    }

    /** The tensors stored in {@code length} bytes of {@code source} at {@code offset} (e.g. a zip entry). */
    public static Map<String, TensorData> read(ByteSource source, long offset, long length, String location) throws IOException {
        if (length < 8) {
            throw corrupt(location, "%d bytes, shorter than the 8-byte header length", length);
        }
        byte[] lengthBytes = new byte[8];
        source.readFully(offset, lengthBytes, 0, 8);
        long headerLength = ByteBuffer.wrap(lengthBytes).order(ByteOrder.LITTLE_ENDIAN).getLong();
        if (headerLength <= 0 || headerLength > MAX_HEADER_BYTES || headerLength > length - 8) {
            throw corrupt(location, "header length %d is invalid (%d bytes in all, header limit %d)", headerLength, length, MAX_HEADER_BYTES);
        }
        byte[] header = new byte[(int) headerLength];
        source.readFully(offset + 8, header, 0, header.length);
        long dataStart = offset + 8 + headerLength;
        List<Entry> entries = parseHeader(location, header, length - 8 - headerLength);
        Map<String, TensorData> out = new LinkedHashMap<>();
        for (Entry e : entries) {
            long bytes = e.end - e.begin;
            if (bytes > Integer.MAX_VALUE - 8) {
                throw KilnException.of(ErrorCode.UNSUPPORTED_OP, "%s: tensor '%s' is %d bytes; Kiln supports tensors up to 2 GiB each", location, e.name, bytes);
            }
            ByteBuffer data = source.slice(dataStart + e.begin, (int) bytes);
            out.put(e.name, new TensorData(e.dtype, e.shape, data));
        }
        return out;
    }

    private record Entry(String name, DType dtype, long[] shape, long begin, long end) { }

    private static List<Entry> parseHeader(String source, byte[] bytes, long dataBytes) {
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
            entries.add(entry(source, name, field.getValue(), dataBytes));
        }
        // The tensors must tile the data region exactly: no overlaps, no gaps, nothing after the last one.
        List<Entry> sorted = new ArrayList<>(entries);
        sorted.sort(Comparator.comparingLong(Entry::begin).thenComparingLong(Entry::end));
        long expected = 0;
        for (Entry e : sorted) {
            if (e.begin != expected) {
                throw corrupt(source, "tensor '%s' starts at data byte %d but the previous tensor ends at %d (offsets must not overlap or leave gaps)",
                        e.name, e.begin, expected);
            }
            expected = e.end;
        }
        if (expected != dataBytes) {
            throw corrupt(source, "tensors cover %d data bytes but the data region has %d", expected, dataBytes);
        }
        return entries;
    }

    private static Entry entry(String source, String name, JsonNode node, long dataBytes) {
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
            if (!d.isIntegralNumber() || !d.canConvertToLong() || d.asLong() < 0) {
                throw corrupt(source, "tensor '%s' has an invalid dimension %s", name, d);
            }
            shape[i] = d.asLong();
            if (shape[i] != 0 && elements > Long.MAX_VALUE / 8 / shape[i]) {
                throw corrupt(source, "tensor '%s' shape %s is impossibly large", name, node.get("shape"));
            }
            elements *= shape[i];
        }
        JsonNode begin = node.get("data_offsets").get(0);
        JsonNode end = node.get("data_offsets").get(1);
        if (!begin.isIntegralNumber() || !end.isIntegralNumber() || !begin.canConvertToLong() || !end.canConvertToLong()) {
            throw corrupt(source, "tensor '%s' has non-integer data_offsets", name);
        }
        long b = begin.asLong();
        long e = end.asLong();
        if (b < 0 || e < b || e > dataBytes) {
            throw corrupt(source, "tensor '%s' data_offsets [%d, %d] fall outside the %d data bytes", name, b, e, dataBytes);
        }
        long needed = elements * dtype.byteSize();
        if (e - b != needed) {
            throw corrupt(source, "tensor '%s' %s %s needs %d bytes, found %d", name, dtype, Arrays.toString(shape), needed, e - b);
        }
        return new Entry(name, dtype, shape, b, e);
    }

    /** The header bytes (length prefix, JSON padded with spaces to 8 bytes) for {@code tensors} in their order. */
    public static byte[] header(Map<String, TensorData> tensors, Map<String, String> metadata) {
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
        byte[] json;
        try {
            json = JSON.writeValueAsBytes(header);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
        int padded = (json.length + 7) / 8 * 8;
        ByteBuffer prefix = ByteBuffer.allocate(8 + padded).order(ByteOrder.LITTLE_ENDIAN);
        prefix.putLong(padded).put(json);
        while (prefix.hasRemaining()) {
            prefix.put((byte) ' ');
        }
        return prefix.array();
    }

    /** Bytes of the whole file for {@code tensors}: header plus data. */
    public static long size(Map<String, TensorData> tensors, Map<String, String> metadata) {
        long size = header(tensors, metadata).length;
        for (TensorData t : tensors.values()) {
            size += t.bytes().remaining();
        }
        return size;
    }

    /** Writes {@code tensors} in safetensors layout, streaming the data (never copied into one buffer). */
    public static void write(Map<String, TensorData> tensors, OutputStream out) throws IOException {
        write(tensors, Map.of(), out);
    }

    public static void write(Map<String, TensorData> tensors, Map<String, String> metadata, OutputStream out) throws IOException {
        out.write(header(tensors, metadata));
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
