package dev.kiln.engine.pass;

import dev.kiln.engine.ir.Attributes;
import dev.kiln.engine.ir.Graph;
import dev.kiln.engine.ir.GraphBuilder;
import dev.kiln.engine.ir.Node;
import dev.kiln.engine.ir.Value;
import dev.kiln.engine.ops.Activation;
import dev.kiln.engine.ops.OpRegistry;
import dev.kiln.engine.tensor.Dim;
import dev.kiln.engine.tensor.Shape;

import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Fuses an activation into the convolution before it ({@code conv2d} gets an {@code activation} attribute), and fuses
 * a dense layer into one {@code dense} node that backends run as a single GEMM with a bias-and-activation
 * epilogue: {@code matmul(x, transpose(W))} (W rank 2, as the block API and PyTorch's Linear produce), optionally
 * followed by {@code add(_, b)} with {@code b} of shape {@code [N]}, optionally followed by relu, sigmoid, tanh or gelu.
 * An existing {@code dense} without activation also absorbs a following activation. Each intermediate must have a
 * single reader and not be a graph output, so no value that someone else reads disappears.
 */
public final class DenseActivationFusion implements Pass {
    @Override
    public String name() {
        return "dense-activation-fusion";
    }

    /** A planned fusion: the nodes it replaces (first to last) and the fused node's inputs and activation. */
    private record Chain(List<Node> members, Value x, Value weight, Value bias, Activation activation, String name) { }

    @Override
    public Graph apply(Graph graph) {
        graph = fuseConvActivations(graph);
        Map<Node, Chain> byLast = new IdentityHashMap<>();
        Set<Node> absorbed = Collections.newSetFromMap(new IdentityHashMap<>());
        for (Node node : graph.nodes()) {
            if (absorbed.contains(node)) {
                continue;
            }
            Chain chain = match(graph, node);
            if (chain != null) {
                absorbed.addAll(chain.members());
                byLast.put(chain.members().get(chain.members().size() - 1), chain);
            }
        }
        if (byLast.isEmpty()) {
            return graph;
        }
        GraphBuilder b = GraphBuilder.rewriting(graph);
        for (Node node : graph.nodes()) {
            Chain chain = byLast.get(node);
            if (chain != null) {
                List<Value> inputs = new ArrayList<>(List.of(chain.x(), chain.weight()));
                if (chain.bias() != null) {
                    inputs.add(chain.bias());
                }
                Value fused = b.add(OpRegistry.DENSE, Attributes.of("activation", chain.activation().opName()), inputs, chain.name()).get(0);
                b.replace(node.output(), fused);
            } else if (!absorbed.contains(node)) {
                b.keep(node);
            }
        }
        return b.outputsOf(graph).build();
    }

    /**
     * A {@code conv2d} without activation whose only reader is relu, sigmoid, tanh or gelu takes it as its
     * {@code activation} attribute (the backend applies it in the same pass as the bias).
     */
    private static Graph fuseConvActivations(Graph graph) {
        Map<Node, Node> activationOf = new IdentityHashMap<>();
        for (Node node : graph.nodes()) {
            if (node.op().equals(OpRegistry.CONV2D) && Activation.fromName(node.attributes().getString("activation", "none")) == Activation.NONE
                    && singleInternalUse(graph, node.output())) {
                Node next = graph.users(node.output()).get(0);
                if (Activation.forOp(next.op()) != null) {
                    activationOf.put(next, node);
                }
            }
        }
        if (activationOf.isEmpty()) {
            return graph;
        }
        Set<Node> convs = Collections.newSetFromMap(new IdentityHashMap<>());
        convs.addAll(activationOf.values());
        GraphBuilder b = GraphBuilder.rewriting(graph);
        for (Node node : graph.nodes()) {
            Node conv = activationOf.get(node);
            if (conv != null) {
                Value fused = b.add(OpRegistry.CONV2D, conv.attributes().with("activation", Activation.forOp(node.op()).opName()),
                        b.map(conv.inputs()), conv.name()).get(0);
                b.replace(node.output(), fused);
            } else if (!convs.contains(node)) {
                b.keep(node);
            }
        }
        return b.outputsOf(graph).build();
    }

    /** A rank-2 transpose with perm [1, 0] (negative axes allowed); [0, 1] is the identity and must not fuse. */
    private static boolean swapsTheTwoAxes(Node transpose) {
        long[] perm = transpose.attributes().getLongs("perm");
        return perm.length == 2 && (perm[0] + 2) % 2 == 1 && (perm[1] + 2) % 2 == 0;
    }

    private static boolean singleInternalUse(Graph graph, Value v) {
        return graph.users(v).size() == 1 && !graph.isOutput(v);
    }

    private static Chain match(Graph graph, Node start) {
        List<Node> members = new ArrayList<>();
        Value x;
        Value weight;
        Value bias = null;
        Activation activation = Activation.NONE;
        if (start.op().equals(OpRegistry.MATMUL)) {
            Node transpose = graph.producer(start.input(1));
            if (transpose == null || !transpose.op().equals(OpRegistry.TRANSPOSE) || transpose.input(0).type().rank() != 2
                    || !swapsTheTwoAxes(transpose) || start.input(0) == start.input(1)
                    || start.input(0).type().rank() < 2 || !singleInternalUse(graph, start.input(1))) {
                return null;
            }
            members.add(transpose);
            x = start.input(0);
            weight = transpose.input(0);
        } else if (start.op().equals(OpRegistry.DENSE) && Activation.fromName(start.attributes().getString("activation", "none")) == Activation.NONE) {
            x = start.input(0);
            weight = start.input(1);
            bias = start.inputs().size() > 2 ? start.input(2) : null;
        } else {
            return null;
        }
        members.add(start);
        Node last = start;
        Dim units = weight.type().shape().dim(0);
        if (bias == null && singleInternalUse(graph, last.output())) {
            Node add = graph.users(last.output()).get(0);
            if (add.op().equals(OpRegistry.ADD)) {
                Value other = add.input(0) == last.output() ? add.input(1) : add.input(0);
                if (other != last.output() && other.type().shape().equals(Shape.of(units))
                        && add.output().type().equals(last.output().type())) {
                    bias = other;
                    members.add(add);
                    last = add;
                }
            }
        }
        if (singleInternalUse(graph, last.output())) {
            Node act = graph.users(last.output()).get(0);
            Activation a = Activation.forOp(act.op());
            if (a != null) {
                activation = a;
                members.add(act);
                last = act;
            }
        }
        if (members.size() == 1 && start.op().equals(OpRegistry.DENSE)) {
            return null;
        }
        return new Chain(members, x, weight, bias, activation, start.name());
    }
}
