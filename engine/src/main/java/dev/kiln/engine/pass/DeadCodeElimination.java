package dev.kiln.engine.pass;

import dev.kiln.engine.ir.Graph;
import dev.kiln.engine.ir.GraphBuilder;
import dev.kiln.engine.ir.Node;
import dev.kiln.engine.ir.Value;

import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Set;

/**
 * Removes nodes none of whose outputs reach a graph output, and the parameters only they read. Ops are pure, so
 * this never changes results. Graph inputs are kept even when unused (they are part of the signature).
 */
public final class DeadCodeElimination implements Pass {
    @Override
    public String name() {
        return "dead-code-elimination";
    }

    @Override
    public Graph apply(Graph graph) {
        Set<Value> live = Collections.newSetFromMap(new IdentityHashMap<>());
        live.addAll(graph.outputs());
        Set<Node> keep = Collections.newSetFromMap(new IdentityHashMap<>());
        List<Node> nodes = graph.nodes();
        for (int i = nodes.size() - 1; i >= 0; i--) {
            Node node = nodes.get(i);
            boolean needed = false;
            for (Value out : node.outputs()) {
                needed |= live.contains(out);
            }
            if (needed) {
                keep.add(node);
                live.addAll(node.inputs());
            }
        }
        if (keep.size() == nodes.size()) {
            return graph;
        }
        GraphBuilder b = GraphBuilder.rewriting(graph);
        for (Node node : nodes) {
            if (keep.contains(node)) {
                b.keep(node);
            }
        }
        return b.outputsOf(graph).build();
    }
}
