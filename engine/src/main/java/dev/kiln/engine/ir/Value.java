package dev.kiln.engine.ir;

import static java.util.Objects.requireNonNull;

/**
 * An SSA value: defined once (by a graph input or one node output), read by any number of nodes. Identity is
 * object identity; {@link GraphPrinter} numbers values by order of appearance, so ids never leak into golden text.
 */
public final class Value {
    private final TensorType type;
    private final String name;

    public Value(TensorType type, String name) {
        this.type = requireNonNull(type, "type is null");
        this.name = name;
    }

    public TensorType type() {
        return type;
    }

    /** An optional human name (graph input names, parameter names); null when anonymous. */
    public String name() {
        return name;
    }

    @Override
    public String toString() {
        return (name == null ? "value" : name) + ":" + type;
    }
}
