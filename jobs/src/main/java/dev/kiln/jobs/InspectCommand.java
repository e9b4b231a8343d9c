package dev.kiln.jobs;

import dev.kiln.engine.ir.Graph;
import dev.kiln.engine.ir.Node;
import dev.kiln.engine.ir.Value;
import dev.kiln.format.kiln.KilnFormat;
import dev.kiln.format.store.ModelStore;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.IdentityHashMap;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;

/** {@code bin/kiln inspect}: what a stored model is, without running it. */
final class InspectCommand implements KilnCli.Command {
    @Override
    public String name() {
        return "inspect";
    }

    @Override
    public String summary() {
        return "print a stored model's manifest, signature, ops, parameters, validation and content hash";
    }

    @Override
    public String usage() {
        return String.join("\n",
                "Usage: bin/kiln inspect --model URI [--dot FILE.dot] [--graph]",
                "",
                "  --model  a .kiln file: a path, file://, hdfs://, s3a://...",
                "  --dot    also write the graph in Graphviz DOT (and FILE.svg when the dot program is installed)",
                "  --graph  also print the graph in Kiln's text form",
                "",
                "Example:",
                "  bin/kiln inspect --model kiln-demo/mlp.kiln --dot mlp.dot");
    }

    @Override
    public int run(String[] argv, PrintStream out) throws Exception {
        Args args = Args.parse(name(), argv, Set.of("model", "dot"), Set.of("graph"));
        KilnFormat.ModelFile file = ModelStore.withDefaults().load(args.required("model"));
        Graph graph = file.graph();
        out.printf("Model        %s%n", file.name());
        out.printf("File         %s%n", file.location());
        out.printf("Format       kiln %s, written by %s%n", file.formatVersion(), file.manifest().path("producer").asText());
        out.printf("Content hash %s%n", file.contentHash());
        out.printf("Signature    %s%n", file.signature());
        out.printf("Parameters   %,d values, %,d bytes, %d tensors%n", file.parameterCount(), file.parameterBytes(), graph.parameters().size());
        out.printf("Ops          %s%n", graph.opCounts());
        out.printf("Passes       %s%n", String.join(", ", file.passes()));
        var validation = file.validation();
        if (validation.isMissingNode()) {
            out.println("Validation   none recorded");
        } else {
            out.printf("Validation   %s on %d sample batches (rtol %s, atol %s)%n", validation.path("passed").asBoolean() ? "passed" : "FAILED",
                    validation.path("samples").asInt(), validation.path("rtol").asText(), validation.path("atol").asText());
            for (var o : validation.path("outputs")) {
                out.printf("             %s: max abs err %.3e, max rel err %.3e%n", o.path("name").asText(),
                        o.path("max_abs_error").asDouble(), o.path("max_rel_error").asDouble());
            }
        }
        if (args.flag("graph")) {
            out.print(graph);
        }
        if (args.has("dot")) {
            Path dot = Models.outputFile(args.get("dot", null));
            Files.writeString(dot, toDot(graph), StandardCharsets.UTF_8);
            out.printf("Wrote %s%n", dot);
            Path svg = dot.resolveSibling(dot.getFileName().toString().replaceFirst("\\.dot$", "") + ".svg");
            if (renderSvg(dot, svg)) {
                out.printf("Wrote %s%n", svg);
            }
        }
        return 0;
    }

    /** The graph in Graphviz DOT: inputs and outputs as ellipses, nodes as boxes labelled op and shape. */
    static String toDot(Graph graph) {
        StringBuilder sb = new StringBuilder("digraph kiln {\n  rankdir=TB;\n  node [fontname=\"Helvetica\", fontsize=10];\n");
        Map<Value, String> producers = new IdentityHashMap<>();
        for (int i = 0; i < graph.inputs().size(); i++) {
            Value v = graph.inputs().get(i);
            String id = "in" + i;
            producers.put(v, id);
            sb.append(String.format("  %s [shape=ellipse, label=\"%s\\n%s\"];%n", id, escape(v.name()), v.type()));
        }
        int n = 0;
        for (Node node : graph.nodes()) {
            String id = "n" + n++;
            for (Value out : node.outputs()) {
                producers.put(out, id);
            }
            String label = node.op() + (node.op().equals("parameter") ? " " + node.attributes().getString("name") : "")
                    + "\\n" + node.outputs().get(0).type();
            String style = node.op().equals("parameter") || node.op().equals("constant") ? ", style=filled, fillcolor=\"#eeeeee\"" : "";
            sb.append(String.format("  %s [shape=box, label=\"%s\"%s];%n", id, escape(label), style));
            for (Value in : node.inputs()) {
                sb.append(String.format("  %s -> %s;%n", producers.get(in), id));
            }
        }
        for (int i = 0; i < graph.outputs().size(); i++) {
            String id = "out" + i;
            sb.append(String.format("  %s [shape=ellipse, label=\"%s\"];%n  %s -> %s;%n", id, escape(graph.outputNames().get(i)),
                    producers.get(graph.outputs().get(i)), id));
        }
        return sb.append("}\n").toString();
    }

    private static String escape(String s) {
        return s.replace("\"", "\\\"");
    }

    private static boolean renderSvg(Path dot, Path svg) {
        try {
            Process p = new ProcessBuilder("dot", "-Tsvg", dot.toString(), "-o", svg.toString()).redirectErrorStream(true).start();
            p.getInputStream().readAllBytes();
            return p.waitFor(60, TimeUnit.SECONDS) && p.exitValue() == 0;
        } catch (IOException e) {
            return false;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        }
    }
}
