package dev.kiln.format.kiln;

import dev.kiln.engine.ops.OpDef;
import dev.kiln.engine.ops.OpRegistry;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Generates the op reference of docs/FORMAT.md from the op registry, so the document cannot drift from the code.
 * The section lives between {@link #BEGIN} and {@link #END}; a test fails when it is stale, and
 * {@code mvn -pl serialization test -Dtest=FormatSpecTest -Dkiln.updateDocs=true} rewrites it.
 */
public final class FormatSpec {
    public static final String BEGIN = "<!-- BEGIN GENERATED OP REFERENCE (FormatSpec) -->";
    public static final String END = "<!-- END GENERATED OP REFERENCE -->";

    private FormatSpec() {
    }

    /** The op reference: one subsection per op with its inputs and attributes. */
    public static String opReference() {
        StringBuilder sb = new StringBuilder();
        sb.append("Ops known to format ").append(KilnFormat.MAJOR).append('.').append(KilnFormat.MINOR)
                .append(" readers (").append(OpRegistry.all().size()).append("), generated from `OpRegistry`.\n");
        sb.append("All tensors are float32 unless stated; shapes broadcast as in NumPy where an op says so.\n\n");
        sb.append("| op | inputs | attributes | meaning |\n|---|---|---|---|\n");
        for (OpDef op : OpRegistry.all()) {
            StringBuilder attrs = new StringBuilder();
            for (OpDef.AttributeSpec a : op.attributes()) {
                if (attrs.length() > 0) {
                    attrs.append("<br>");
                }
                attrs.append('`').append(a.name()).append("` (").append(a.type()).append(a.required() ? ", required" : ", optional")
                        .append("): ").append(a.doc());
            }
            sb.append("| `").append(op.name()).append("` | ")
                    .append(op.inputNames().isEmpty() ? "—" : String.join(", ", op.inputNames())).append(" | ")
                    .append(attrs.length() == 0 ? "—" : attrs.toString()).append(" | ")
                    .append(op.summary().replace("|", "\\|")).append(" |\n");
        }
        sb.append("\nONNX ops that `bin/kiln compile --model FILE.onnx` imports onto these (opsets ")
                .append(dev.kiln.format.onnx.OnnxImporter.MIN_OPSET).append('–').append(dev.kiln.format.onnx.OnnxImporter.MAX_OPSET)
                .append("; an attribute a converter cannot honour is reported with the node), generated from `OnnxOps`:\n");
        sb.append(String.join(", ", dev.kiln.format.onnx.OnnxImporter.supportedOps())).append(".\n");
        return sb.toString();
    }

    /** {@code document} with its generated section replaced by the current op reference. */
    public static String update(String document) {
        int begin = document.indexOf(BEGIN);
        int end = document.indexOf(END);
        if (begin < 0 || end < begin) {
            throw new IllegalArgumentException("FORMAT.md lacks the generated-section markers " + BEGIN + " ... " + END);
        }
        return document.substring(0, begin + BEGIN.length()) + "\n" + opReference() + document.substring(end);
    }

    /** Rewrites the generated section of the FORMAT.md at {@code args[0]}. */
    public static void main(String[] args) throws IOException {
        Path file = Path.of(args[0]);
        Files.writeString(file, update(Files.readString(file, StandardCharsets.UTF_8)), StandardCharsets.UTF_8);
    }
}
