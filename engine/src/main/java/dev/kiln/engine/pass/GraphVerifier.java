package dev.kiln.engine.pass;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;
import dev.kiln.engine.ir.Graph;
import dev.kiln.engine.ir.Node;
import dev.kiln.engine.ir.TensorType;
import dev.kiln.engine.ir.Value;
import dev.kiln.engine.ops.OpDef;
import dev.kiln.engine.ops.OpRegistry;

import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Set;

/**
 * Checks the IR invariants: every op is registered, every value is defined exactly once and before it is read,
 * every output type is what the op registry infers from the inputs, parameters exist, outputs are defined.
 * The pipeline runs it after every pass in tests.
 */
public final class GraphVerifier {
    private GraphVerifier() {
    }

    public static Graph verify(Graph graph) {
        return verify(graph, "graph");
    }

    public static Graph verify(Graph graph, String stage) {
        Set<Value> defined = Collections.newSetFromMap(new IdentityHashMap<>());
        for (Value in : graph.inputs()) {
            if (!defined.add(in)) {
                fail(stage, "input %s is listed twice", in);
            }
        }
        for (Node node : graph.nodes()) {
            OpDef def;
            try {
                def = OpRegistry.get(node.op());
            } catch (KilnException e) {
                throw fail(stage, "node %s: %s", node.describe(), e.getMessage());
            }
            for (Value in : node.inputs()) {
                if (!defined.contains(in)) {
                    throw fail(stage, "node %s reads %s before it is defined", node.describe(), in);
                }
            }
            List<TensorType> expected;
            if (node.op().equals(OpRegistry.PARAMETER)) {
                String name = node.attributes().getString("name");
                if (!graph.parameters().containsKey(name)) {
                    throw fail(stage, "parameter node '%s' has no entry in the parameter table", name);
                }
                var data = graph.parameters().get(name);
                expected = List.of(new TensorType(data.dtype(), dev.kiln.engine.tensor.Shape.of(data.shape())));
            } else {
                List<TensorType> inTypes = new ArrayList<>();
                for (Value in : node.inputs()) {
                    inTypes.add(in.type());
                }
                try {
                    expected = def.inferTypes(inTypes, node.attributes());
                } catch (KilnException e) {
                    throw fail(stage, "node %s: %s", node.describe(), e.getMessage());
                }
            }
            if (expected.size() != node.outputs().size()) {
                throw fail(stage, "node %s defines %d outputs, its op infers %d", node.describe(), node.outputs().size(), expected.size());
            }
            for (int i = 0; i < expected.size(); i++) {
                Value out = node.outputs().get(i);
                if (!out.type().equals(expected.get(i))) {
                    throw fail(stage, "node %s output %d is %s but the op infers %s", node.describe(), i, out.type(), expected.get(i));
                }
                if (!defined.add(out)) {
                    throw fail(stage, "value %s is defined twice (at node %s)", out, node.describe());
                }
            }
        }
        for (int i = 0; i < graph.outputs().size(); i++) {
            if (!defined.contains(graph.outputs().get(i))) {
                throw fail(stage, "output '%s' is not defined", graph.outputNames().get(i));
            }
        }
        return graph;
    }

    private static KilnException fail(String stage, String format, Object... args) {
        return new KilnException(ErrorCode.INVALID_GRAPH, "Invalid " + stage + ": " + String.format(format, args));
    }
}
