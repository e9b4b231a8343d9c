package dev.kiln.format.kiln;

import dev.kiln.engine.Kiln;
import dev.kiln.engine.exec.CompiledModel;
import dev.kiln.engine.ir.Signature;
import dev.kiln.engine.nn.Dense;
import dev.kiln.engine.nn.LambdaBlock;
import dev.kiln.engine.nn.Sequential;
import dev.kiln.engine.ops.Activation;
import dev.kiln.engine.tensor.Shape;
import dev.kiln.engine.tensor.Tensor;
import dev.kiln.format.io.BytesByteSource;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.UnaryOperator;
import java.util.zip.CRC32;

/** Test helpers: small models as .kiln bytes, and rewriting entries while keeping the container canonical and CRCs valid. */
final class KilnFiles {
    private KilnFiles() {
    }

    /** A small model with several op kinds (dense, softmax, reshape/transpose, constants): a few KB as a file. */
    static Sequential smallBlock() {
        Tensor scale = Tensor.of(new long[] {4}, new float[] {0.5f, 1f, 1.5f, 2f});
        return (Sequential) new Sequential().add(
                new Dense(8, Activation.GELU, true, 6),
                new LambdaBlock("mix", x -> x.reshape(0, 2, 4).transpose(0, 2, 1).reshape(0, -1)),
                new Dense(4, Activation.TANH),
                new LambdaBlock("scale", x -> x.mul(scale).softmax(-1))).setSeed(11);
    }

    static final Signature SMALL_SIGNATURE = Signature.builder().input("x", Shape.batched(6)).output("y").build();

    static byte[] smallModelBytes() {
        try (CompiledModel model = Kiln.compile(smallBlock(), SMALL_SIGNATURE)) {
            return toBytes(model, "small");
        }
    }

    static byte[] toBytes(CompiledModel model, String name) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try {
            KilnFormat.write(model, name, null, out);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return out.toByteArray();
    }

    /** The entries of a canonical file, by name. */
    static Map<String, byte[]> entries(byte[] file) {
        try {
            BytesByteSource source = new BytesByteSource(file, "test");
            Map<String, byte[]> out = new LinkedHashMap<>();
            for (ZipContainer.Entry e : ZipContainer.read(source, KilnFormat.ENTRIES)) {
                byte[] data = new byte[(int) e.size()];
                source.readFully(e.dataOffset(), data, 0, data.length);
                out.put(e.name(), data);
            }
            return out;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Writes entries (any names, in the given order) as a canonical container with correct CRCs. */
    static byte[] container(Map<String, byte[]> entries) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try {
            ZipContainer.Writer zip = new ZipContainer.Writer(out);
            for (Map.Entry<String, byte[]> e : entries.entrySet()) {
                CRC32 crc = new CRC32();
                crc.update(e.getValue());
                zip.entry(e.getKey(), e.getValue().length, crc.getValue(), o -> o.write(e.getValue()));
            }
            zip.finish();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return out.toByteArray();
    }

    /**
     * Replaces one entry's bytes and, when the graph or weights change, the manifest's sha-256 and size for it: the
     * result is consistent at every level but the one under test.
     */
    static byte[] rewrite(byte[] file, String entry, UnaryOperator<byte[]> change) {
        Map<String, byte[]> entries = entries(file);
        byte[] before = entries.get(entry);
        byte[] after = change.apply(before);
        entries.put(entry, after);
        if (!entry.equals(KilnFormat.MANIFEST)) {
            String manifest = new String(entries.get(KilnFormat.MANIFEST), StandardCharsets.UTF_8);
            manifest = manifest.replace(KilnFormat.sha(before), KilnFormat.sha(after))
                    .replace("\"bytes\" : " + before.length, "\"bytes\" : " + after.length);
            entries.put(KilnFormat.MANIFEST, manifest.getBytes(StandardCharsets.UTF_8));
        }
        return container(entries);
    }

    static byte[] rewriteText(byte[] file, String entry, String from, String to) {
        return rewrite(file, entry, bytes -> {
            String text = new String(bytes, StandardCharsets.ISO_8859_1);
            if (!text.contains(from)) {
                throw new AssertionError(entry + " does not contain " + from + ":\n" + text.substring(0, Math.min(text.length(), 2000)));
            }
            return text.replace(from, to).getBytes(StandardCharsets.ISO_8859_1);
        });
    }

    static List<String> names() {
        return KilnFormat.ENTRIES;
    }
}
