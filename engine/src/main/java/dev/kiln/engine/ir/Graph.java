package dev.kiln.engine.ir;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;
import dev.kiln.engine.ops.OpRegistry;
import dev.kiln.engine.tensor.TensorData;

import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static java.util.Objects.requireNonNull;

/**
 * An immutable SSA graph: named inputs, nodes in a valid execution order, named outputs, and the parameter table
 * (name to data) that {@code parameter} nodes refer to. Passes take a graph and return a new one.
 */
public final class Graph {
    private final List<Value> inputs;
    private final List<Node> nodes;
    private final List<Value> outputs;
    private final List<String> outputNames;
    private final Map<String, TensorData> parameters;
    private Map<Value, Node> producers;
    private Map<Value, List<Node>> users;

    Graph(List<Value> inputs, List<Node> nodes, List<Value> outputs, List<String> outputNames, Map<String, TensorData> parameters) {
        this.inputs = List.copyOf(inputs);
        this.nodes = List.copyOf(nodes);
        this.outputs = List.copyOf(outputs);
        this.outputNames = List.copyOf(outputNames);
        this.parameters = Collections.unmodifiableMap(new LinkedHashMap<>(requireNonNull(parameters, "parameters is null")));
        if (outputs.size() != outputNames.size()) {
            throw new IllegalArgumentException("outputs and outputNames differ in size");
        }
    }

    public List<Value> inputs() {
        return inputs;
    }

    public List<String> inputNames() {
        List<String> names = new ArrayList<>();
        for (Value v : inputs) {
            names.add(v.name());
        }
        return names;
    }

    public List<Node> nodes() {
        return nodes;
    }

    public List<Value> outputs() {
        return outputs;
    }

    public List<String> outputNames() {
        return outputNames;
    }

    public Map<String, TensorData> parameters() {
        return parameters;
    }

    public TensorData parameter(String name) {
        TensorData data = parameters.get(name);
        if (data == null) {
            throw KilnException.of(ErrorCode.INVALID_GRAPH, "Graph has no parameter '%s'", name);
        }
        return data;
    }

    /** The node that defines {@code value}, or null for graph inputs. */
    public Node producer(Value value) {
        if (producers == null) {
            Map<Value, Node> map = new IdentityHashMap<>();
            for (Node node : nodes) {
                for (Value out : node.outputs()) {
                    map.put(out, node);
                }
            }
            producers = map;
        }
        return producers.get(value);
    }

    /** The nodes that read {@code value}, in execution order. */
    public List<Node> users(Value value) {
        if (users == null) {
            Map<Value, List<Node>> map = new IdentityHashMap<>();
            for (Node node : nodes) {
                for (Value in : node.inputs()) {
                    List<Node> list = map.computeIfAbsent(in, k -> new ArrayList<>());
                    if (list.isEmpty() || list.get(list.size() - 1) != node) {
                        list.add(node);
                    }
                }
            }
            users = map;
        }
        return users.getOrDefault(value, List.of());
    }

    public boolean isOutput(Value value) {
        for (Value out : outputs) {
            if (out == value) {
                return true;
            }
        }
        return false;
    }

    /** The data of a constant or parameter value, or null if the value is computed at run time. */
    public TensorData constantData(Value value) {
        Node node = producer(value);
        if (node == null) {
            return null;
        }
        if (node.op().equals(OpRegistry.CONSTANT)) {
            return node.attributes().getTensor("value");
        }
        if (node.op().equals(OpRegistry.PARAMETER)) {
            return parameter(node.attributes().getString("name"));
        }
        return null;
    }

    /** Counts nodes per op, e.g. to assert that a fusion removed every {@code add}. */
    public Map<String, Integer> opCounts() {
        Map<String, Integer> counts = new java.util.TreeMap<>();
        for (Node node : nodes) {
            counts.merge(node.op(), 1, Integer::sum);
        }
        return counts;
    }

    @Override
    public String toString() {
        return GraphPrinter.print(this);
    }
}
