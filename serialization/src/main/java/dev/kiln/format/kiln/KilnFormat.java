package dev.kiln.format.kiln;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
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
import dev.kiln.format.safetensors.Safetensors;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
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
import java.util.zip.ZipEntry;
import java.util.zip.ZipInputStream;
import java.util.zip.ZipOutputStream;

/**
 * The {@code .kiln} model file: a zip of uncompressed entries {@code manifest.json}, {@code graph.json} and
 * {@code weights.safetensors}. The manifest carries the format version, producer, model name, signature, passes
 * applied, the sha-256 of the other entries and the validation report. Readers accept any minor version of their
 * major and refuse a newer major, naming both. Nothing in a file is executed or Java-deserialised. See docs/FORMAT.md.
 */
public final class KilnFormat {
    public static final String FORMAT = "kiln";
    public static final int MAJOR = 1;
    public static final int MINOR = 0;
    public static final String PRODUCER = "kiln " + version();
    static final String MANIFEST = "manifest.json";
    static final String GRAPH = "graph.json";
    static final String WEIGHTS = "weights.safetensors";
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private KilnFormat() {
    }

    static String version() {
        String v = KilnFormat.class.getPackage().getImplementationVersion();
        return v == null ? "0.1.0-SNAPSHOT" : v;
    }

    /** A model read from a file: its manifest and verified graph. */
    public record ModelFile(String name, Signature signature, List<String> passes, JsonNode manifest, Graph graph) {
        /** Binds the graph to the CPU backend (the graph is already optimized). The caller closes the result. */
        public CompiledModel toCompiledModel() {
            return new CompiledModel(graph, passes, CpuBackend.INSTANCE);
        }
    }

    public static void write(CompiledModel model, String name, ValidationReport validation, Path file) {
        try (OutputStream out = Files.newOutputStream(file)) {
            write(model, name, validation, out);
        } catch (IOException e) {
            throw new KilnException(ErrorCode.IO_ERROR, "Cannot write model file " + file + ": " + e.getMessage(), e);
        }
    }

    public static void write(CompiledModel model, String name, ValidationReport validation, OutputStream out) throws IOException {
        Map<String, TensorData> tensors = new LinkedHashMap<>();
        byte[] graph = JSON.writeValueAsBytes(GraphCodec.encode(model.graph(), tensors));
        ByteArrayOutputStream weights = new ByteArrayOutputStream();
        Safetensors.write(tensors, weights);
        byte[] weightBytes = weights.toByteArray();
        ObjectNode manifest = JSON.createObjectNode();
        manifest.put("format", FORMAT);
        manifest.put("format_version", MAJOR + "." + MINOR);
        manifest.put("producer", PRODUCER);
        manifest.put("model_name", name);
        ObjectNode signature = manifest.putObject("signature");
        specs(signature.putArray("inputs"), model.signature().inputs());
        specs(signature.putArray("outputs"), model.signature().outputs());
        ArrayNode passes = manifest.putArray("passes");
        model.passes().forEach(passes::add);
        ObjectNode entries = manifest.putObject("entries");
        entries.putObject(GRAPH).put("sha256", sha256(graph)).put("bytes", graph.length);
        entries.putObject(WEIGHTS).put("sha256", sha256(weightBytes)).put("bytes", weightBytes.length);
        if (validation != null) {
            ObjectNode v = manifest.putObject("validation");
            v.put("passed", validation.passed()).put("samples", validation.samples()).put("rtol", validation.rtol()).put("atol", validation.atol());
            ArrayNode outs = v.putArray("outputs");
            for (ValidationReport.OutputError o : validation.outputs()) {
                outs.addObject().put("name", o.name()).put("max_abs_error", o.maxAbsError()).put("max_rel_error", o.maxRelError())
                        .put("within_tolerance", o.withinTolerance());
            }
        }
        try (ZipOutputStream zip = new ZipOutputStream(out)) {
            stored(zip, MANIFEST, JSON.writeValueAsBytes(manifest));
            stored(zip, GRAPH, graph);
            stored(zip, WEIGHTS, weightBytes);
        }
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

    private static void stored(ZipOutputStream zip, String name, byte[] data) throws IOException {
        ZipEntry entry = new ZipEntry(name);
        entry.setMethod(ZipEntry.STORED);
        entry.setSize(data.length);
        entry.setCompressedSize(data.length);
        CRC32 crc = new CRC32();
        crc.update(data);
        entry.setCrc(crc.getValue());
        zip.putNextEntry(entry);
        zip.write(data);
        zip.closeEntry();
    }

    static String sha256(byte[] data) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(data));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    public static ModelFile read(Path file) {
        try (InputStream in = Files.newInputStream(file)) {
            return read(in, file.toString());
        } catch (IOException e) {
            throw new KilnException(ErrorCode.IO_ERROR, "Cannot read model file " + file + ": " + e.getMessage(), e);
        }
    }

    public static ModelFile read(InputStream in, String source) throws IOException {
        Map<String, byte[]> entries = new LinkedHashMap<>();
        try (ZipInputStream zip = new ZipInputStream(in)) {
            ZipEntry entry;
            while ((entry = zip.getNextEntry()) != null) {
                entries.put(entry.getName(), zip.readAllBytes());
            }
        } catch (java.util.zip.ZipException e) {
            throw new KilnException(ErrorCode.CORRUPT_MODEL, "Corrupt model " + source + ": not a valid .kiln zip (" + e.getMessage() + ")", e);
        }
        for (String required : List.of(MANIFEST, GRAPH, WEIGHTS)) {
            if (!entries.containsKey(required)) {
                throw KilnException.of(ErrorCode.CORRUPT_MODEL, "Corrupt model %s: entry %s is missing (found %s)", source, required, entries.keySet());
            }
        }
        JsonNode manifest = parse(entries.get(MANIFEST), source, MANIFEST);
        if (!FORMAT.equals(manifest.path("format").asText())) {
            throw KilnException.of(ErrorCode.CORRUPT_MODEL, "Corrupt model %s: manifest format is '%s', expected '%s'", source, manifest.path("format").asText(), FORMAT);
        }
        String version = manifest.path("format_version").asText();
        int major;
        try {
            major = Integer.parseInt(version.substring(0, version.indexOf('.')));
        } catch (RuntimeException e) {
            throw KilnException.of(ErrorCode.CORRUPT_MODEL, "Corrupt model %s: format_version '%s' is not major.minor", source, version);
        }
        if (major != MAJOR) {
            throw KilnException.of(ErrorCode.UNSUPPORTED_VERSION, "Cannot read %s: model format version %s; this reader supports %d.x", source, version, MAJOR);
        }
        for (String name : List.of(GRAPH, WEIGHTS)) {
            String expected = manifest.path("entries").path(name).path("sha256").asText();
            String actual = sha256(entries.get(name));
            if (!expected.equals(actual)) {
                throw KilnException.of(ErrorCode.CORRUPT_MODEL, "Corrupt model %s: %s has sha-256 %s but the manifest says %s", source, name, actual, expected);
            }
        }
        Map<String, TensorData> tensors = Safetensors.read(ByteBuffer.wrap(entries.get(WEIGHTS)), source + "!/" + WEIGHTS);
        Graph graph = GraphCodec.decode(parse(entries.get(GRAPH), source, GRAPH), tensors, source);
        GraphVerifier.verify(graph, "graph in " + source);
        List<String> passes = new ArrayList<>();
        manifest.path("passes").forEach(p -> passes.add(p.asText()));
        return new ModelFile(manifest.path("model_name").asText(), Signature.of(graph), passes, manifest, graph);
    }

    private static JsonNode parse(byte[] bytes, String source, String entry) {
        try {
            JsonNode node = JSON.readTree(bytes);
            if (node == null || !node.isObject()) {
                throw KilnException.of(ErrorCode.CORRUPT_MODEL, "Corrupt model %s: %s is not a JSON object", source, entry);
            }
            return node;
        } catch (IOException e) {
            throw new KilnException(ErrorCode.CORRUPT_MODEL, "Corrupt model " + source + ": " + entry + " is not valid JSON", e);
        }
    }
}
