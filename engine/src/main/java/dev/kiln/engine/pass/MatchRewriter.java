package dev.kiln.engine.pass;

import dev.kiln.engine.ir.Graph;
import dev.kiln.engine.ir.GraphBuilder;
import dev.kiln.engine.ir.Node;
import dev.kiln.engine.ir.Value;

import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Function;

/**
 * The rewriting loop the fusion passes share: find matches in graph order, keep those that do not overlap an earlier
 * one, and replace each match's nodes by what {@code emit} builds, which takes over the output of the node the match
 * was found at (its last node). Unmatched nodes are kept; the graph is returned unchanged when nothing matched.
 */
final class MatchRewriter {
    /** Builds the replacement of {@code match}, found at {@code last}; returns the value that replaces last's output. */
    interface Emit<M> {
        Value emit(GraphBuilder b, Node last, M match);
    }

    private MatchRewriter() {
    }

    /**
     * @param matcher a match ending at the given node, or null
     * @param members every node a match replaces (including the node it was found at)
     */
    static <M> Graph rewrite(Graph graph, java.util.function.BiFunction<Graph, Node, M> matcher, Function<M, List<Node>> members, Emit<M> emit) {
        Map<Node, M> byLast = new IdentityHashMap<>();
        Set<Node> absorbed = Collections.newSetFromMap(new IdentityHashMap<>());
        for (Node node : graph.nodes()) {
            if (absorbed.contains(node)) {
                continue;
            }
            M m = matcher.apply(graph, node);
            if (m != null && members.apply(m).stream().noneMatch(absorbed::contains)) {
                absorbed.addAll(members.apply(m));
                absorbed.add(node);
                byLast.put(node, m);
            }
        }
        if (byLast.isEmpty()) {
            return graph;
        }
        GraphBuilder b = GraphBuilder.rewriting(graph);
        for (Node node : graph.nodes()) {
            M m = byLast.get(node);
            if (m != null) {
                b.replace(node.output(), emit.emit(b, node, m));
            } else if (!absorbed.contains(node)) {
                b.keep(node);
            }
        }
        return b.outputsOf(graph).build();
    }
}
