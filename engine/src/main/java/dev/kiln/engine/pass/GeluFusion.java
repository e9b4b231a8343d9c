package dev.kiln.engine.pass;

import dev.kiln.engine.ir.Attributes;
import dev.kiln.engine.ir.Graph;
import dev.kiln.engine.ir.Node;
import dev.kiln.engine.ir.Value;
import dev.kiln.engine.ops.OpRegistry;
import dev.kiln.engine.tensor.DType;
import dev.kiln.engine.tensor.TensorData;

import java.util.List;

/**
 * Recognizes exact GELU written out elementwise, as {@code torch.onnx.export} writes {@code nn.GELU()} (opsets before
 * 20 have no Gelu op): {@code mul(mul(x, add(erf(div(x, sqrt 2)), 1)), 0.5)} (each commutative operand in either
 * order, {@code mul(x, 1/sqrt 2)} accepted for the division), and replaces it with one {@code gelu} node, which
 * dense-activation fusion then folds into the layer before it. Five passes over the data become none. Constants must
 * be scalars equal to the expected values within 1e-6; every intermediate must have a single reader and not be a
 * graph output.
 */
public final class GeluFusion implements Pass {
    private static final double SQRT2 = Math.sqrt(2);

    @Override
    public String name() {
        return "gelu-fusion";
    }

    private record Match(Value x, List<Node> members) { }

    @Override
    public Graph apply(Graph graph) {
        return MatchRewriter.rewrite(graph, GeluFusion::match, Match::members,
                (b, last, m) -> b.add1("gelu", Attributes.EMPTY, last.name(), b.map(m.x())));
    }

    private static boolean single(Graph graph, Value v) {
        return graph.users(v).size() == 1 && !graph.isOutput(v);
    }

    /** The scalar value of a constant, or NaN. */
    private static double scalar(Graph graph, Value v) {
        TensorData data = graph.constantData(v);
        if (data == null || data.dtype() != DType.FLOAT32 || data.elementCount() != 1) {
            return Double.NaN;
        }
        return data.toFloatArray()[0];
    }

    private static boolean near(double a, double b) {
        return Math.abs(a - b) <= 1e-6 * Math.max(1, Math.abs(b));
    }

    /** For a binary node, the operand that is not the scalar constant {@code c} (either order), or null. */
    private static Value otherThan(Graph graph, Node node, double c) {
        if (node.inputs().size() != 2) {
            return null;
        }
        if (near(scalar(graph, node.input(1)), c)) {
            return node.input(0);
        }
        if (near(scalar(graph, node.input(0)), c)) {
            return node.input(1);
        }
        return null;
    }

    /** {@code last} = mul(mul(x, add(erf(x / sqrt 2), 1)), 0.5), matched backwards from the final multiply. */
    private static Match match(Graph graph, Node last) {
        if (!last.op().equals(OpRegistry.MUL)) {
            return null;
        }
        Value product = otherThan(graph, last, 0.5);
        Node inner = product == null ? null : graph.producer(product);
        if (inner == null || !inner.op().equals(OpRegistry.MUL) || !single(graph, product)) {
            return null;
        }
        for (int side = 0; side < 2; side++) {
            Value x = inner.input(side);
            Value sum = inner.input(1 - side);
            Node add = graph.producer(sum);
            if (add == null || !add.op().equals(OpRegistry.ADD) || !single(graph, sum)) {
                continue;
            }
            Value erfOut = otherThan(graph, add, 1.0);
            Node erf = erfOut == null ? null : graph.producer(erfOut);
            if (erf == null || !erf.op().equals(OpRegistry.ERF) || !single(graph, erfOut)) {
                continue;
            }
            Value scaled = erf.input(0);
            Node scale = graph.producer(scaled);
            if (scale == null || !single(graph, scaled)) {
                continue;
            }
            boolean divides = scale.op().equals(OpRegistry.DIV) && scale.input(0) == x && near(scalar(graph, scale.input(1)), SQRT2);
            boolean multiplies = scale.op().equals(OpRegistry.MUL) && otherThan(graph, scale, 1 / SQRT2) == x;
            if ((divides || multiplies) && last.output().type().equals(x.type())) {
                return new Match(x, List.of(scale, erf, add, inner, last));
            }
        }
        return null;
    }
}
