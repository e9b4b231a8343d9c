package dev.kiln.engine.ir;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;
import dev.kiln.engine.ops.OpDef;
import dev.kiln.engine.ops.OpRegistry;
import dev.kiln.engine.tensor.Shape;
import dev.kiln.engine.tensor.TensorData;

import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Builds a {@link Graph}, from scratch (the tracer, importers, tests) or as a rewrite of an existing graph (passes):
 * {@link #rewriting} starts with the old graph's inputs and parameters, the pass re-emits or replaces each node, and
 * {@link #replace} redirects every later use of a value. Output types are inferred by the op registry.
 */
public final class GraphBuilder {
    private final List<Value> inputs = new ArrayList<>();
    private final List<Node> nodes = new ArrayList<>();
    private final List<Value> outputs = new ArrayList<>();
    private final List<String> outputNames = new ArrayList<>();
    private final Map<String, TensorData> parameters = new LinkedHashMap<>();
    private final Map<String, Value> parameterValues = new LinkedHashMap<>();
    private final Map<Value, Value> replacements = new IdentityHashMap<>();

    public GraphBuilder() {
    }

    /** A builder holding {@code graph}'s inputs and parameter table, ready to re-emit its nodes. */
    public static GraphBuilder rewriting(Graph graph) {
        GraphBuilder b = new GraphBuilder();
        b.inputs.addAll(graph.inputs());
        b.parameters.putAll(graph.parameters());
        return b;
    }

    public Value input(String name, TensorType type) {
        Value v = new Value(type, name);
        inputs.add(v);
        return v;
    }

    /** A parameter value backed by {@code data}; the same name returns the same value. */
    public Value parameter(String name, TensorData data) {
        Value existing = parameterValues.get(name);
        if (existing != null) {
            return existing;
        }
        parameters.put(name, data);
        Value v = new Value(new TensorType(data.dtype(), Shape.of(data.shape())), name);
        nodes.add(new Node(OpRegistry.PARAMETER, Attributes.of("name", name), List.of(), List.of(v), name));
        parameterValues.put(name, v);
        return v;
    }

    public Value constant(TensorData data) {
        return add(OpRegistry.CONSTANT, Attributes.of("value", data), List.of(), null).get(0);
    }

    /** Adds a node, inferring its output types; inputs are redirected through {@link #replace}. */
    public List<Value> add(String op, Attributes attributes, List<Value> inputs, String name) {
        OpDef def = OpRegistry.get(op);
        List<Value> mapped = map(inputs);
        List<TensorType> types = new ArrayList<>();
        for (Value v : mapped) {
            types.add(v.type());
        }
        List<TensorType> outTypes;
        try {
            outTypes = def.inferTypes(types, attributes);
        } catch (KilnException e) {
            if (name == null) {
                throw e;
            }
            throw new KilnException(e.code(), "At " + op + " '" + name + "': " + e.getMessage(), e);
        }
        List<Value> outs = new ArrayList<>();
        for (TensorType t : outTypes) {
            outs.add(new Value(t, null));
        }
        nodes.add(new Node(op, attributes, mapped, outs, name));
        return outs;
    }

    /** Sets the source name of the last node added (the tracer names nodes by block path). */
    public void nameLast(String name) {
        if (name != null && !name.isEmpty() && !nodes.isEmpty()) {
            Node last = nodes.remove(nodes.size() - 1);
            nodes.add(new Node(last.op(), last.attributes(), last.inputs(), last.outputs(), name));
        }
    }

    public Value add1(String op, Attributes attributes, String name, Value... inputs) {
        return add(op, attributes, List.of(inputs), name).get(0);
    }

    /** Re-emits {@code node} with its inputs redirected; the same node object when nothing changed. */
    public void keep(Node node) {
        List<Value> mapped = map(node.inputs());
        Node kept = mapped.equals(node.inputs()) ? node : node.withInputs(mapped);
        nodes.add(kept);
        if (kept.op().equals(OpRegistry.PARAMETER)) {
            parameterValues.put(kept.attributes().getString("name"), kept.output());
        }
    }

    /** Every later use of {@code from} (and the graph outputs) reads {@code to} instead. */
    public void replace(Value from, Value to) {
        if (from != to) {
            replacements.put(from, to);
        }
    }

    public Value map(Value v) {
        Value current = v;
        Value next;
        while ((next = replacements.get(current)) != null) {
            current = next;
        }
        return current;
    }

    public List<Value> map(List<Value> values) {
        List<Value> out = new ArrayList<>(values.size());
        for (Value v : values) {
            out.add(map(v));
        }
        return out;
    }

    public void output(String name, Value value) {
        outputs.add(value);
        outputNames.add(name);
    }

    /** Adds {@code graph}'s outputs (redirected) under their names: the usual last step of a rewrite. */
    public GraphBuilder outputsOf(Graph graph) {
        for (int i = 0; i < graph.outputs().size(); i++) {
            output(graph.outputNames().get(i), graph.outputs().get(i));
        }
        return this;
    }

    public Graph build() {
        List<Value> mappedOutputs = map(outputs);
        // Keep only parameters that a parameter node still refers to.
        Map<String, TensorData> used = new LinkedHashMap<>();
        for (Node node : nodes) {
            if (node.op().equals(OpRegistry.PARAMETER)) {
                String name = node.attributes().getString("name");
                TensorData data = parameters.get(name);
                if (data == null) {
                    throw KilnException.of(ErrorCode.INVALID_GRAPH, "parameter node '%s' has no data", name);
                }
                used.put(name, data);
            }
        }
        return new Graph(inputs, nodes, mappedOutputs, outputNames, used);
    }

    /** Builds a graph with an explicit parameter table (deserialisation); parameter nodes are added as given. */
    public static Graph of(List<Value> inputs, List<Node> nodes, List<Value> outputs, List<String> outputNames,
            Map<String, TensorData> parameters) {
        return new Graph(inputs, nodes, outputs, outputNames, parameters);
    }
}
