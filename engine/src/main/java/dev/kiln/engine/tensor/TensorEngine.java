package dev.kiln.engine.tensor;

import dev.kiln.engine.ir.Attributes;

import java.util.List;

/**
 * What executes tensor ops: the eager engine (ND4J, immediately) or a tracer (records graph nodes). A {@link Tensor}
 * dispatches every op to the engine of its inputs; any symbolic input makes the call symbolic.
 */
public interface TensorEngine {
    /** Runs (or records) {@code op} from the op registry; returns its outputs. */
    List<Tensor> apply(String op, Attributes attributes, List<Tensor> inputs);

    /** A tensor of this engine holding {@code data}. */
    Tensor constant(TensorData data);
}
