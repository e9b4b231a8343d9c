package dev.kiln.engine.pass;

import dev.kiln.engine.ir.Attributes;
import dev.kiln.engine.ir.Graph;
import dev.kiln.engine.ir.Node;
import dev.kiln.engine.ir.Value;
import dev.kiln.engine.ops.OpRegistry;
import dev.kiln.engine.tensor.DType;
import dev.kiln.engine.tensor.Shape;
import dev.kiln.engine.tensor.TensorData;

import java.util.ArrayList;
import java.util.List;

/**
 * Recognizes layer normalization over the last axis written out elementwise — what the block API's {@code LayerNorm}
 * traces to and what ONNX LayerNormalization imports as —
 * {@code c = x - mean(x); (c / sqrt(mean(c * c) + eps)) * scale + bias} ({@code pow(c, 2)} also accepted) (reductions over the last axis with kept
 * dims, {@code eps} a scalar constant, {@code scale} and {@code bias} of shape {@code [d]}, each commutative operand in
 * either order; the scale multiply and the bias add may be missing, as after simplification of a scale of ones or a
 * bias of zeros), and replaces the nodes with one {@code layer_norm}: one pass over each row instead of eight
 * over the tensor. Every intermediate must be read only inside the pattern and not be a graph output.
 */
public final class LayerNormFusion implements Pass {
    @Override
    public String name() {
        return "layer-norm-fusion";
    }

    /** A match; a null scale or bias means ones or zeros. */
    private record Match(Value x, Value scale, Value bias, double epsilon, List<Node> members) { }

    @Override
    public Graph apply(Graph graph) {
        return MatchRewriter.rewrite(graph, LayerNormFusion::match, Match::members, (b, last, m) -> {
            long d = m.x().type().shape().dim(m.x().type().rank() - 1).size();
            float[] ones = new float[(int) d];
            java.util.Arrays.fill(ones, 1f);
            Value scale = m.scale() != null ? b.map(m.scale()) : b.constant(TensorData.ofFloats(new long[] {d}, ones));
            Value bias = m.bias() != null ? b.map(m.bias()) : b.constant(TensorData.ofFloats(new long[] {d}, new float[(int) d]));
            return b.add1(OpRegistry.LAYER_NORM, Attributes.of("epsilon", m.epsilon()), last.name(), b.map(m.x()), scale, bias);
        });
    }

    /** Whether every reader of {@code v} is in {@code allowed} and {@code v} is not a graph output. */
    private static boolean readOnlyBy(Graph graph, Value v, Node... allowed) {
        if (graph.isOutput(v)) {
            return false;
        }
        for (Node user : graph.users(v)) {
            boolean ok = false;
            for (Node a : allowed) {
                ok |= user == a;
            }
            if (!ok) {
                return false;
            }
        }
        return true;
    }

    private static boolean meanOfLastAxis(Node node) {
        if (node == null || !node.op().equals(OpRegistry.REDUCE_MEAN) || node.attributes().getLong("keepdims", 1) != 1) {
            return false;
        }
        long[] axes = node.attributes().getLongs("axes");
        int rank = node.input(0).type().rank();
        return axes.length == 1 && (axes[0] == -1 || axes[0] == rank - 1);
    }

    private static Node producer(Graph graph, Value v, String op) {
        Node n = graph.producer(v);
        return n != null && n.op().equals(op) ? n : null;
    }

    /** The other operand of a binary node, given one of them. */
    private static Value other(Node node, Value one) {
        return node.input(0) == one ? node.input(1) : node.input(0);
    }

    /** Whether {@code other} has the shape of the normalized axis ({@code [d]}), as a scale or bias must. */
    private static boolean perFeature(Value other, Value normalized) {
        Shape s = normalized.type().shape();
        return s.rank() >= 1 && other.type().shape().equals(Shape.of(s.dim(s.rank() - 1)));
    }

    /** Whether the single reader of {@code v} would extend the match (a scale multiply or a bias add), so it should wait. */
    private static boolean extendedBy(Graph graph, Value v, String op) {
        if (graph.users(v).size() != 1 || graph.isOutput(v)) {
            return false;
        }
        Node next = graph.users(v).get(0);
        return next.op().equals(op) && next.inputs().size() == 2 && perFeature(other(next, v), v);
    }

    /**
     * The normalization ending at {@code last}: {@code add(mul(div, scale), bias)}, or without the multiply or the add
     * (algebraic simplification removes a scale of ones and a bias of zeros, which fresh PyTorch LayerNorms have).
     */
    private static Match match(Graph graph, Node last) {
        switch (last.op()) {
            case OpRegistry.ADD -> {
                for (int side = 0; side < 2; side++) {
                    Value bias = last.input(1 - side);
                    Node inner = graph.producer(last.input(side));
                    if (inner == null || !perFeature(bias, last.input(side)) || !readOnlyBy(graph, inner.output(), last)) {
                        continue;
                    }
                    Match m = inner.op().equals(OpRegistry.MUL) ? scaled(graph, inner, bias, last)
                            : inner.op().equals(OpRegistry.DIV) ? matchNormalized(graph, inner, null, bias, last) : null;
                    if (m != null) {
                        return m;
                    }
                }
                return null;
            }
            case OpRegistry.MUL -> {
                return extendedBy(graph, last.output(), OpRegistry.ADD) ? null : scaled(graph, last, null, last);
            }
            case OpRegistry.DIV -> {
                return extendedBy(graph, last.output(), OpRegistry.MUL) || extendedBy(graph, last.output(), OpRegistry.ADD)
                        ? null : matchNormalized(graph, last, null, null, last);
            }
            default -> {
                return null;
            }
        }
    }

    /** {@code scaled = mul(div, scale)} (either order), then the normalization under it. */
    private static Match scaled(Graph graph, Node scaled, Value bias, Node last) {
        for (int side = 0; side < 2; side++) {
            Node div = producer(graph, scaled.input(side), OpRegistry.DIV);
            Value scale = scaled.input(1 - side);
            if (div == null || !perFeature(scale, scaled.input(side)) || !readOnlyBy(graph, div.output(), scaled)) {
                continue;
            }
            Match m = matchNormalized(graph, div, scale, bias, last);
            if (m != null) {
                List<Node> members = new ArrayList<>(m.members());
                if (scaled != last) {
                    members.add(scaled);
                }
                return new Match(m.x(), m.scale(), m.bias(), m.epsilon(), members);
            }
        }
        return null;
    }

    private static boolean isScalar(Graph graph, Value v, float expected) {
        TensorData data = graph.constantData(v);
        return data != null && data.dtype() == DType.FLOAT32 && data.elementCount() == 1 && data.toFloatArray()[0] == expected;
    }

    private static Match matchNormalized(Graph graph, Node div, Value scale, Value bias, Node last) {
        Node sub = producer(graph, div.input(0), OpRegistry.SUB);
        Node sqrt = producer(graph, div.input(1), OpRegistry.SQRT);
        if (sub == null || sqrt == null || !readOnlyBy(graph, sqrt.output(), div)) {
            return null;
        }
        Value x = sub.input(0);
        Node mean = graph.producer(sub.input(1));
        if (!meanOfLastAxis(mean) || mean.input(0) != x || !readOnlyBy(graph, mean.output(), sub)) {
            return null;
        }
        Node addEps = producer(graph, sqrt.input(0), OpRegistry.ADD);
        Node variance = null;
        double epsilon = Double.NaN;
        if (addEps == null) {
            // eps = 0: algebraic simplification has already removed the addition.
            Node v = graph.producer(sqrt.input(0));
            if (meanOfLastAxis(v) && readOnlyBy(graph, v.output(), sqrt)) {
                variance = v;
                epsilon = 0;
            }
        } else if (readOnlyBy(graph, addEps.output(), sqrt)) {
            for (int side = 0; side < 2; side++) {
                Node v = graph.producer(addEps.input(side));
                TensorData eps = graph.constantData(addEps.input(1 - side));
                if (meanOfLastAxis(v) && eps != null && eps.dtype() == DType.FLOAT32 && eps.elementCount() == 1
                        && readOnlyBy(graph, v.output(), addEps)) {
                    variance = v;
                    epsilon = eps.toFloatArray()[0];
                }
            }
        }
        if (variance == null) {
            return null;
        }
        // c * c, or pow(c, 2) as older ONNX exports write it.
        Node square = graph.producer(variance.input(0));
        boolean squares = square != null && (square.op().equals(OpRegistry.MUL) && square.input(0) == sub.output() && square.input(1) == sub.output()
                || square.op().equals(OpRegistry.POW) && square.input(0) == sub.output() && isScalar(graph, square.input(1), 2));
        if (!squares || !readOnlyBy(graph, square.output(), variance)) {
            return null;
        }
        if (!readOnlyBy(graph, sub.output(), square, div)) {
            return null;
        }
        if (!last.output().type().equals(x.type()) || x.type().rank() < 1 || x.type().shape().dim(x.type().rank() - 1).isSymbolic()) {
            return null;
        }
        List<Node> members = new ArrayList<>(List.of(mean, sub, square, variance, sqrt, div));
        if (addEps != null) {
            members.add(addEps);
        }
        if (last != div) {
            members.add(last);
        }
        return new Match(x, scale, bias, epsilon, members);
    }
}
