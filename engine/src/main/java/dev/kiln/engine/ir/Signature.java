package dev.kiln.engine.ir;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;
import dev.kiln.engine.tensor.DType;
import dev.kiln.engine.tensor.Shape;

import java.util.ArrayList;
import java.util.List;

/**
 * A model's inputs and outputs: names, dtypes and shapes with named dimensions ({@code batch} symbolic). Output
 * types are filled in by compilation; a signature passed to {@code Kiln.compile} may name outputs only.
 */
public record Signature(List<Spec> inputs, List<Spec> outputs) {
    /** One named tensor of a signature. */
    public record Spec(String name, DType dtype, Shape shape) {
        @Override
        public String toString() {
            return name + ": " + dtype + shape;
        }
    }

    public Signature {
        inputs = List.copyOf(inputs);
        outputs = List.copyOf(outputs);
    }

    public static Builder builder() {
        return new Builder();
    }

    public Spec input(String name) {
        for (Spec s : inputs) {
            if (s.name().equals(name)) {
                return s;
            }
        }
        throw KilnException.of(ErrorCode.BAD_INPUT, "Model has no input '%s'; inputs: %s", name, inputs);
    }

    public static Signature of(Graph graph) {
        List<Spec> in = new ArrayList<>();
        for (Value v : graph.inputs()) {
            in.add(new Spec(v.name(), v.type().dtype(), v.type().shape()));
        }
        List<Spec> out = new ArrayList<>();
        for (int i = 0; i < graph.outputs().size(); i++) {
            Value v = graph.outputs().get(i);
            out.add(new Spec(graph.outputNames().get(i), v.type().dtype(), v.type().shape()));
        }
        return new Signature(in, out);
    }

    @Override
    public String toString() {
        return inputs + " -> " + outputs;
    }

    /** Builds a signature: {@code Signature.builder().input("x", Shape.batched(512)).output("y").build()}. */
    public static final class Builder {
        private final List<Spec> inputs = new ArrayList<>();
        private final List<Spec> outputs = new ArrayList<>();

        public Builder input(String name, Shape shape) {
            return input(name, DType.FLOAT32, shape);
        }

        public Builder input(String name, DType dtype, Shape shape) {
            inputs.add(new Spec(name, dtype, shape));
            return this;
        }

        /** Names the next output; its type is inferred when the model is traced. */
        public Builder output(String name) {
            outputs.add(new Spec(name, null, null));
            return this;
        }

        public Signature build() {
            if (inputs.isEmpty()) {
                throw KilnException.of(ErrorCode.INVALID_ARGUMENT, "A signature needs at least one input");
            }
            return new Signature(inputs, outputs);
        }
    }
}
