package dev.kiln.format.kiln;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;
import dev.kiln.engine.backend.cpu.CpuBackend;
import dev.kiln.engine.exec.CompiledModel;
import dev.kiln.engine.exec.ValidationReport;
import dev.kiln.engine.ir.Graph;
import dev.kiln.engine.ir.Signature;
import dev.kiln.engine.pass.GraphVerifier;
import dev.kiln.engine.tensor.Dim;
import dev.kiln.engine.tensor.TensorData;
import dev.kiln.format.io.ByteSource;
import dev.kiln.format.io.BytesByteSource;
import dev.kiln.format.io.PathByteSource;
import dev.kiln.format.safetensors.Safetensors;

import java.io.EOFException;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.zip.CRC32;

/**
 * The {@code .kiln} model file: a canonical zip ({@link ZipContainer}) of the stored entries {@code manifest.json},
 * {@code graph.json} and {@code weights.safetensors}. The manifest carries the format version, producer, model name,
 * signature, passes applied, the sha-256 of the other entries and the validation report. Readers accept any minor
 * version of their major and refuse another major, naming both. Nothing in a file is executed or Java-deserialised;
 * every problem with a file is a {@link KilnException} naming it. Specified in docs/FORMAT.md.
 */
public final class KilnFormat {
    public static final String FORMAT = "kiln";
    public static final int MAJOR = 1;
    public static final int MINOR = 1;
    public static final String PRODUCER = "kiln " + version();
    static final String MANIFEST = "manifest.json";
    static final String GRAPH = "graph.json";
    static final String WEIGHTS = "weights.safetensors";
    static final List<String> ENTRIES = List.of(MANIFEST, GRAPH, WEIGHTS);
    static final long MAX_MANIFEST_BYTES = 16L << 20;
    static final long MAX_GRAPH_BYTES = 256L << 20;
    private static final JsonMapper JSON = JsonMapper.builder().enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
            .enable(SerializationFeature.INDENT_OUTPUT).build();

    private KilnFormat() {
    }

    static String version() {
        String v = KilnFormat.class.getPackage().getImplementationVersion();
        return v == null ? "0.1.0-SNAPSHOT" : v;
    }

    /**
     * A model read from a file: the verified graph and what the manifest says about it.
     *
     * @param contentHash sha-256 over the graph and weights checksums: the model's stable identity, for caches
     */
    public record ModelFile(String location, String name, String formatVersion, Signature signature, List<String> passes,
                            JsonNode manifest, Graph graph, String contentHash) {
        /** Binds the graph to the CPU backend (the graph is already optimized). The caller closes the result. */
        public CompiledModel toCompiledModel() {
            return new CompiledModel(graph, passes, CpuBackend.INSTANCE);
        }

        /** What the model was built from ({@code zoo:NAME}, an ONNX file), or null when unknown. */
        public String source() {
            return manifest.hasNonNull("source") ? manifest.get("source").asText() : null;
        }

        /** The validation report recorded at export, or a missing node. */
        public JsonNode validation() {
            return manifest.path("validation");
        }

        public long parameterCount() {
            return graph.parameters().values().stream().mapToLong(TensorData::elementCount).sum();
        }

        public long parameterBytes() {
            return graph.parameters().values().stream().mapToLong(t -> t.elementCount() * t.dtype().byteSize()).sum();
        }
    }

    // ---- writing ------------------------------------------------------------------------------------------------

    /** Writes to a temporary file beside {@code file}, then moves it into place (a reader never sees a partial file). */
    public static void write(CompiledModel model, String name, ValidationReport validation, Path file) {
        Path temporary = file.resolveSibling("." + file.getFileName() + "." + java.util.UUID.randomUUID() + ".tmp");
        try {
            try (OutputStream out = Files.newOutputStream(temporary)) {
                write(model, name, validation, out);
            }
            Files.move(temporary, file, java.nio.file.StandardCopyOption.REPLACE_EXISTING, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            throw new KilnException(ErrorCode.IO_ERROR, "Cannot write model file " + file + ": " + e.getMessage(), e);
        } finally {
            try {
                Files.deleteIfExists(temporary);
            } catch (IOException ignored) {
                // The write's own failure is what matters.
            }
        }
    }

    /** Writes the model to {@code out}, streaming the weights (they are read twice: checksums first, then bytes). */
    public static void write(CompiledModel model, String name, ValidationReport validation, OutputStream out) throws IOException {
        write(model.graph(), model.passes(), name, validation, out);
    }

    public static void write(Graph graph, List<String> passes, String name, ValidationReport validation, OutputStream out) throws IOException {
        write(graph, passes, name, null, validation, out);
    }

    /**
     * Writes a model; {@code source} (optional) records what it was built from, e.g. {@code zoo:seed-mlp}, so that
     * {@code bin/kiln validate} can rebuild the eager model and compare again.
     */
    public static void write(Graph graph, List<String> passes, String name, String source, ValidationReport validation, OutputStream out)
            throws IOException {
        Map<String, TensorData> tensors = new LinkedHashMap<>();
        byte[] graphBytes = JSON.writeValueAsBytes(GraphCodec.encode(graph, tensors));
        byte[] weightsHeader = Safetensors.header(tensors, Map.of());
        Digest weights = new Digest();
        weights.update(ByteBuffer.wrap(weightsHeader));
        for (TensorData t : tensors.values()) {
            weights.update(t.bytes());
        }
        Digest graphDigest = new Digest();
        graphDigest.update(ByteBuffer.wrap(graphBytes));
        ObjectNode manifestNode = manifest(Signature.of(graph), passes, name, validation, graphDigest, weights);
        if (source != null) {
            manifestNode.put("source", source);
        }
        byte[] manifest = JSON.writeValueAsBytes(manifestNode);
        Digest manifestDigest = new Digest();
        manifestDigest.update(ByteBuffer.wrap(manifest));

        ZipContainer.Writer zip = new ZipContainer.Writer(out);
        zip.entry(MANIFEST, manifest.length, manifestDigest.crc(), o -> o.write(manifest));
        zip.entry(GRAPH, graphBytes.length, graphDigest.crc(), o -> o.write(graphBytes));
        zip.entry(WEIGHTS, weights.bytes(), weights.crc(), o -> {
            o.write(weightsHeader);
            byte[] chunk = new byte[1 << 16];
            for (TensorData t : tensors.values()) {
                ByteBuffer data = t.bytes();
                while (data.hasRemaining()) {
                    int n = Math.min(chunk.length, data.remaining());
                    data.get(chunk, 0, n);
                    o.write(chunk, 0, n);
                }
            }
        });
        zip.finish();
    }

    private static ObjectNode manifest(Signature signature, List<String> passes, String name, ValidationReport validation,
            Digest graph, Digest weights) {
        ObjectNode manifest = JSON.createObjectNode();
        manifest.put("format", FORMAT);
        manifest.put("format_version", MAJOR + "." + MINOR);
        manifest.put("producer", PRODUCER);
        manifest.put("model_name", name);
        ObjectNode sig = manifest.putObject("signature");
        specs(sig.putArray("inputs"), signature.inputs());
        specs(sig.putArray("outputs"), signature.outputs());
        ArrayNode passList = manifest.putArray("passes");
        passes.forEach(passList::add);
        ObjectNode entries = manifest.putObject("entries");
        entries.putObject(GRAPH).put("sha256", graph.sha256()).put("bytes", graph.bytes());
        entries.putObject(WEIGHTS).put("sha256", weights.sha256()).put("bytes", weights.bytes());
        if (validation != null) {
            ObjectNode v = manifest.putObject("validation");
            v.put("passed", validation.passed()).put("samples", validation.samples()).put("rtol", validation.rtol()).put("atol", validation.atol());
            ArrayNode outs = v.putArray("outputs");
            for (ValidationReport.OutputError o : validation.outputs()) {
                outs.addObject().put("name", o.name()).put("max_abs_error", o.maxAbsError()).put("max_rel_error", o.maxRelError())
                        .put("within_tolerance", o.withinTolerance());
            }
        }
        return manifest;
    }

    private static void specs(ArrayNode array, List<Signature.Spec> specs) {
        for (Signature.Spec s : specs) {
            ObjectNode o = array.addObject();
            o.put("name", s.name()).put("dtype", s.dtype().toString());
            ArrayNode shape = o.putArray("shape");
            for (Dim d : s.shape().dims()) {
                if (d.isConcrete()) {
                    shape.add(d.size());
                } else {
                    shape.add(d.toString());
                }
            }
        }
    }

    /** CRC-32, sha-256 and length of a byte stream, fed in pieces. */
    static final class Digest {
        private final CRC32 crc = new CRC32();
        private final MessageDigest sha;
        private long bytes;

        Digest() {
            try {
                sha = MessageDigest.getInstance("SHA-256");
            } catch (NoSuchAlgorithmException e) {
                throw new IllegalStateException(e);
            }
        }

        void update(ByteBuffer data) {
            ByteBuffer a = data.duplicate();
            ByteBuffer b = data.duplicate();
            bytes += data.remaining();
            crc.update(a);
            sha.update(b);
        }

        void update(byte[] data, int offset, int length) {
            crc.update(data, offset, length);
            sha.update(data, offset, length);
            bytes += length;
        }

        long crc() {
            return crc.getValue();
        }

        String sha256() {
            return HexFormat.of().formatHex(sha.digest());
        }

        long bytes() {
            return bytes;
        }
    }

    // ---- reading ------------------------------------------------------------------------------------------------

    public static ModelFile read(Path file) {
        try (PathByteSource source = new PathByteSource(file)) {
            return read(source);
        } catch (IOException e) {
            throw new KilnException(ErrorCode.IO_ERROR, "Cannot read model file " + file + ": " + e.getMessage(), e);
        }
    }

    public static ModelFile read(byte[] bytes, String location) {
        return read(new BytesByteSource(bytes, location));
    }

    /**
     * Reads and checks a model: the zip structure, each entry's CRC-32 and sha-256, the format version, the graph (every
     * op known, every reference resolved, types consistent). Any problem is a {@link KilnException} naming the file.
     */
    public static ModelFile read(ByteSource source) {
        String where = source.location();
        try {
            return readChecked(source);
        } catch (KilnException e) {
            if (e.getMessage().contains(where)) {
                throw e;
            }
            ErrorCode code = e.code() == ErrorCode.UNSUPPORTED_OP || e.code() == ErrorCode.UNSUPPORTED_VERSION ? e.code() : ErrorCode.CORRUPT_MODEL;
            throw new KilnException(code, "Corrupt model " + where + ": " + e.getMessage(), e);
        } catch (EOFException e) {
            throw new KilnException(ErrorCode.CORRUPT_MODEL, "Corrupt model " + where + ": truncated (" + e.getMessage() + ")", e);
        } catch (IOException e) {
            throw new KilnException(ErrorCode.IO_ERROR, "Cannot read model file " + where + ": " + e.getMessage(), e);
        } catch (RuntimeException | StackOverflowError e) {
            // A safety net: every check above should have named the problem; this keeps the contract if one did not.
            throw new KilnException(ErrorCode.CORRUPT_MODEL, "Corrupt model " + where + ": unreadable (" + e + ")", e);
        }
    }

    private static ModelFile readChecked(ByteSource source) throws IOException {
        String where = source.location();
        List<ZipContainer.Entry> entries = ZipContainer.read(source, ENTRIES);
        ZipContainer.Entry manifestEntry = entries.get(0);
        ZipContainer.Entry graphEntry = entries.get(1);
        ZipContainer.Entry weightsEntry = entries.get(2);

        byte[] manifestBytes = readEntry(source, manifestEntry, MAX_MANIFEST_BYTES);
        JsonNode manifest = parse(manifestBytes, where, MANIFEST);
        if (!FORMAT.equals(manifest.path("format").asText())) {
            throw ZipContainer.corrupt(where, "manifest format is '%s', expected '%s'", manifest.path("format").asText(), FORMAT);
        }
        String version = manifest.path("format_version").asText();
        int dot = version.indexOf('.');
        int major;
        try {
            major = Integer.parseInt(version.substring(0, dot));
            Integer.parseInt(version.substring(dot + 1));
        } catch (RuntimeException e) {
            throw ZipContainer.corrupt(where, "format_version '%s' is not MAJOR.MINOR", version);
        }
        if (major != MAJOR) {
            throw KilnException.of(ErrorCode.UNSUPPORTED_VERSION, "Cannot read %s: model format version %s; this reader supports %d.x", where, version, MAJOR);
        }

        byte[] graphBytes = readEntry(source, graphEntry, MAX_GRAPH_BYTES);
        String graphSha = sha(graphBytes);
        checkSha(where, manifest, GRAPH, graphSha, graphEntry.size());

        Digest weights = new Digest();
        byte[] chunk = new byte[1 << 20];
        for (long at = 0; at < weightsEntry.size(); at += chunk.length) {
            int n = (int) Math.min(chunk.length, weightsEntry.size() - at);
            source.readFully(weightsEntry.dataOffset() + at, chunk, 0, n);
            weights.update(chunk, 0, n);
        }
        if (weights.crc() != weightsEntry.crc()) {
            throw ZipContainer.corrupt(where, "%s fails its CRC-32 check (damaged data)", WEIGHTS);
        }
        String weightsSha = weights.sha256();
        checkSha(where, manifest, WEIGHTS, weightsSha, weightsEntry.size());

        Map<String, TensorData> tensors = Safetensors.read(source, weightsEntry.dataOffset(), weightsEntry.size(), where + "!/" + WEIGHTS);
        Graph graph = GraphCodec.decode(parse(graphBytes, where, GRAPH), tensors, where);
        GraphVerifier.verify(graph, "graph in " + where);
        Signature signature = Signature.of(graph);
        String declared = manifest.path("signature").toString();
        ObjectNode sig = JSON.createObjectNode();
        specs(sig.putArray("inputs"), signature.inputs());
        specs(sig.putArray("outputs"), signature.outputs());
        if (!sig.toString().equals(declared)) {
            throw ZipContainer.corrupt(where, "manifest signature %s differs from the graph's %s", declared, sig);
        }
        List<String> passes = new ArrayList<>();
        manifest.path("passes").forEach(p -> passes.add(p.asText()));
        String contentHash = sha(("kiln-model\n" + graphSha + "\n" + weightsSha + "\n").getBytes(java.nio.charset.StandardCharsets.US_ASCII));
        return new ModelFile(where, manifest.path("model_name").asText(), version, signature, passes, manifest, graph, contentHash);
    }

    private static byte[] readEntry(ByteSource source, ZipContainer.Entry entry, long limit) throws IOException {
        if (entry.size() > limit) {
            throw ZipContainer.corrupt(source.location(), "%s is %d bytes, over the %d-byte limit", entry.name(), entry.size(), limit);
        }
        byte[] bytes = new byte[(int) entry.size()];
        source.readFully(entry.dataOffset(), bytes, 0, bytes.length);
        CRC32 crc = new CRC32();
        crc.update(bytes);
        if (crc.getValue() != entry.crc()) {
            throw ZipContainer.corrupt(source.location(), "%s fails its CRC-32 check (damaged data)", entry.name());
        }
        return bytes;
    }

    private static void checkSha(String where, JsonNode manifest, String entry, String actual, long size) {
        JsonNode recorded = manifest.path("entries").path(entry);
        String expected = recorded.path("sha256").asText();
        if (!expected.equals(actual)) {
            throw ZipContainer.corrupt(where, "%s has sha-256 %s but the manifest says %s", entry, actual, expected);
        }
        if (recorded.path("bytes").asLong(-1) != size) {
            throw ZipContainer.corrupt(where, "%s is %d bytes but the manifest says %s", entry, size, recorded.path("bytes"));
        }
    }

    static String sha(byte[] data) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(data));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    private static JsonNode parse(byte[] bytes, String source, String entry) {
        try {
            JsonNode node = JSON.readTree(bytes);
            if (node == null || !node.isObject()) {
                throw ZipContainer.corrupt(source, "%s is not a JSON object", entry);
            }
            return node;
        } catch (JsonProcessingException e) {
            throw ZipContainer.corrupt(source, "%s is not valid JSON (%s)", entry, e.getOriginalMessage());
        } catch (IOException e) {
            throw ZipContainer.corrupt(source, "%s is not valid JSON (%s)", entry, e.getMessage());
        }
    }
}
