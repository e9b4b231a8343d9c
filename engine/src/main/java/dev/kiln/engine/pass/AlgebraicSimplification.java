package dev.kiln.engine.pass;

import dev.kiln.engine.ir.Attributes;
import dev.kiln.engine.ir.Graph;
import dev.kiln.engine.ir.GraphBuilder;
import dev.kiln.engine.ir.Node;
import dev.kiln.engine.ir.Value;
import dev.kiln.engine.ops.OpRegistry;
import dev.kiln.engine.tensor.TensorData;

import java.nio.FloatBuffer;
import java.util.IdentityHashMap;
import java.util.Map;

/**
 * Local identities that never change results: {@code x*1}, {@code 1*x}, {@code x/1}, {@code x+0}, {@code 0+x},
 * {@code x-0} become {@code x} (when broadcasting does not change x's shape); {@code identity(x)} and a reshape to
 * the same shape become {@code x}; reshape of reshape becomes one reshape; transpose of transpose becomes one
 * transpose, or nothing when the permutations cancel.
 */
public final class AlgebraicSimplification implements Pass {
    @Override
    public String name() {
        return "algebraic-simplification";
    }

    @Override
    public Graph apply(Graph graph) {
        GraphBuilder b = GraphBuilder.rewriting(graph);
        Map<Value, Node> producers = new IdentityHashMap<>();
        boolean changed = false;
        for (Node original : graph.nodes()) {
            Node node = original.withInputs(b.map(original.inputs()));
            Value replacement = simplify(node, graph, producers, b);
            if (replacement != null) {
                b.replace(original.output(), replacement);
                changed = true;
                continue;
            }
            b.keep(original);
            for (Value out : node.outputs()) {
                producers.put(out, node);
            }
        }
        return changed ? b.outputsOf(graph).build() : graph;
    }

    private static Value simplify(Node node, Graph graph, Map<Value, Node> producers, GraphBuilder b) {
        switch (node.op()) {
            case OpRegistry.IDENTITY:
                return node.input(0);
            case OpRegistry.MUL:
                return neutral(node, graph, producers, 1f, true);
            case OpRegistry.ADD:
                return neutral(node, graph, producers, 0f, true);
            case OpRegistry.DIV:
                return neutral(node, graph, producers, 1f, false);
            case OpRegistry.SUB:
                return neutral(node, graph, producers, 0f, false);
            case OpRegistry.RESHAPE: {
                Value x = node.input(0);
                if (x.type().equals(node.output().type())) {
                    return x;
                }
                Node inner = producers.get(x);
                if (inner != null && inner.op().equals(OpRegistry.RESHAPE)) {
                    Value source = inner.input(0);
                    if (source.type().equals(node.output().type())) {
                        return source;
                    }
                    return b.add1(OpRegistry.RESHAPE, Attributes.of("shape", explicitShape(node)), node.name(), source);
                }
                return null;
            }
            case OpRegistry.TRANSPOSE: {
                Node inner = producers.get(node.input(0));
                if (inner == null || !inner.op().equals(OpRegistry.TRANSPOSE)) {
                    return null;
                }
                long[] outer = node.attributes().getLongs("perm");
                long[] first = inner.attributes().getLongs("perm");
                int rank = outer.length;
                long[] composed = new long[rank];
                boolean identity = true;
                for (int i = 0; i < rank; i++) {
                    composed[i] = norm(first[(int) norm(outer[i], rank)], rank);
                    identity &= composed[i] == i;
                }
                Value source = inner.input(0);
                return identity ? source : b.add1(OpRegistry.TRANSPOSE, Attributes.of("perm", composed), node.name(), source);
            }
            default:
                return null;
        }
    }

    private static long norm(long axis, int rank) {
        return axis < 0 ? axis + rank : axis;
    }

    /** The reshape's output shape written with 0 for a symbolic dimension kept in place and -1 for one that moved. */
    private static long[] explicitShape(Node reshape) {
        var shape = reshape.output().type().shape();
        long[] out = new long[shape.rank()];
        for (int i = 0; i < out.length; i++) {
            var d = shape.dim(i);
            out[i] = d.isConcrete() ? d.size() : -1;
        }
        return out;
    }

    /** x op c or c op x where c is all {@code neutral}, and the result has x's type: returns x. */
    private static Value neutral(Node node, Graph graph, Map<Value, Node> producers, float neutral, boolean commutative) {
        Value a = node.input(0);
        Value c = node.input(1);
        if (isAll(c, graph, producers, neutral) && a.type().equals(node.output().type())) {
            return a;
        }
        if (commutative && isAll(a, graph, producers, neutral) && c.type().equals(node.output().type())) {
            return c;
        }
        return null;
    }

    private static boolean isAll(Value v, Graph graph, Map<Value, Node> producers, float expected) {
        Node producer = producers.get(v);
        TensorData data = null;
        if (producer != null && producer.op().equals(OpRegistry.CONSTANT)) {
            data = producer.attributes().getTensor("value");
        } else if (producer != null && producer.op().equals(OpRegistry.PARAMETER)) {
            data = graph.parameters().get(producer.attributes().getString("name"));
        }
        if (data == null || data.elementCount() > 1 << 20) {
            return false;
        }
        FloatBuffer values = data.floats();
        for (int i = 0; i < values.limit(); i++) {
            if (Float.compare(values.get(i), expected) != 0 && !(expected == 0f && values.get(i) == 0f)) {
                return false;
            }
        }
        return true;
    }
}
