package dev.kiln.engine.ir;

import java.util.List;

import static java.util.Objects.requireNonNull;

/** One operation in a graph: an op name from the registry, attributes, input values and the values it defines. */
public final class Node {
    private final String op;
    private final Attributes attributes;
    private final List<Value> inputs;
    private final List<Value> outputs;
    private final String name;

    public Node(String op, Attributes attributes, List<Value> inputs, List<Value> outputs, String name) {
        this.op = requireNonNull(op, "op is null");
        this.attributes = requireNonNull(attributes, "attributes is null");
        this.inputs = List.copyOf(inputs);
        this.outputs = List.copyOf(outputs);
        this.name = name;
    }

    public String op() {
        return op;
    }

    public Attributes attributes() {
        return attributes;
    }

    public List<Value> inputs() {
        return inputs;
    }

    public Value input(int i) {
        return inputs.get(i);
    }

    public List<Value> outputs() {
        return outputs;
    }

    public Value output() {
        return outputs.get(0);
    }

    /** Where the node came from (block path or imported node name); used in error messages. May be null. */
    public String name() {
        return name;
    }

    public Node withInputs(List<Value> newInputs) {
        return new Node(op, attributes, newInputs, outputs, name);
    }

    /** A readable place for error messages: {@code dense 'mlp/0'}. */
    public String describe() {
        return name == null ? op : op + " '" + name + "'";
    }

    @Override
    public String toString() {
        return describe();
    }
}
