package dev.kiln.engine.ir;

import java.util.IdentityHashMap;
import java.util.Map;

/**
 * A stable text form of a graph, used by golden tests and {@code bin/kiln inspect}. Values are numbered in order
 * of definition ({@code %0, %1, ...}); inputs print with their names.
 * <pre>
 * graph(%x: float32[batch, 512]) {
 *   %0: float32[256, 512] = parameter() {name=0.weight}
 *   %1: float32[batch, 256] = dense(%x, %0, ...) {activation=relu}
 *   return y=%1
 * }
 * </pre>
 */
public final class GraphPrinter {
    private GraphPrinter() {
    }

    public static String print(Graph graph) {
        Map<Value, String> names = new IdentityHashMap<>();
        StringBuilder sb = new StringBuilder("graph(");
        for (int i = 0; i < graph.inputs().size(); i++) {
            Value in = graph.inputs().get(i);
            String name = "%" + in.name();
            names.put(in, name);
            sb.append(i > 0 ? ", " : "").append(name).append(": ").append(in.type());
        }
        sb.append(") {\n");
        int counter = 0;
        for (Node node : graph.nodes()) {
            sb.append("  ");
            for (int i = 0; i < node.outputs().size(); i++) {
                Value out = node.outputs().get(i);
                String name = "%" + counter++;
                names.put(out, name);
                sb.append(i > 0 ? ", " : "").append(name).append(": ").append(out.type());
            }
            sb.append(" = ").append(node.op()).append('(');
            for (int i = 0; i < node.inputs().size(); i++) {
                sb.append(i > 0 ? ", " : "").append(nameOf(names, node.inputs().get(i)));
            }
            sb.append(')');
            String attrs = node.attributes().toString();
            if (!attrs.isEmpty()) {
                sb.append(' ').append(attrs);
            }
            sb.append('\n');
        }
        sb.append("  return ");
        for (int i = 0; i < graph.outputs().size(); i++) {
            sb.append(i > 0 ? ", " : "").append(graph.outputNames().get(i)).append('=').append(nameOf(names, graph.outputs().get(i)));
        }
        return sb.append("\n}\n").toString();
    }

    private static String nameOf(Map<Value, String> names, Value v) {
        String name = names.get(v);
        return name == null ? "%<undefined " + v + ">" : name;
    }
}
