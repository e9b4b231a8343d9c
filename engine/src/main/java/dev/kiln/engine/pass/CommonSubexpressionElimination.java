package dev.kiln.engine.pass;

import dev.kiln.engine.ir.Attributes;
import dev.kiln.engine.ir.Graph;
import dev.kiln.engine.ir.GraphBuilder;
import dev.kiln.engine.ir.Node;
import dev.kiln.engine.ir.Value;

import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Merges nodes that compute the same thing: same op, equal attributes (constants compare by content) and the same
 * input values. Later duplicates are replaced by the first; every op is pure, so this is always safe.
 */
public final class CommonSubexpressionElimination implements Pass {
    private record Key(String op, Attributes attributes, List<Identity> inputs) { }

    /** Compares values by identity inside a record key. */
    private record Identity(Value value) {
        @Override
        public boolean equals(Object o) {
            return o instanceof Identity other && other.value == value;
        }

        @Override
        public int hashCode() {
            return System.identityHashCode(value);
        }
    }

    @Override
    public String name() {
        return "common-subexpression-elimination";
    }

    @Override
    public Graph apply(Graph graph) {
        GraphBuilder b = GraphBuilder.rewriting(graph);
        Map<Key, Node> seen = new HashMap<>();
        boolean changed = false;
        for (Node node : graph.nodes()) {
            List<Value> inputs = b.map(node.inputs());
            Key key = new Key(node.op(), node.attributes(), inputs.stream().map(Identity::new).toList());
            Node first = seen.get(key);
            if (first != null) {
                for (int i = 0; i < node.outputs().size(); i++) {
                    b.replace(node.outputs().get(i), first.outputs().get(i));
                }
                changed = true;
                continue;
            }
            seen.put(key, node);
            b.keep(node);
        }
        return changed ? b.outputsOf(graph).build() : graph;
    }
}
