package dev.kiln.engine.nn;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;
import dev.kiln.engine.tensor.Tensor;

import java.util.List;

/** A block with one input and one output: subclasses write {@link #forwardInternal(Tensor)}. */
public abstract class UnaryBlock extends Block {
    protected abstract Tensor forwardInternal(Tensor x);

    @Override
    protected final List<Tensor> forwardInternal(List<Tensor> inputs) {
        if (inputs.size() != 1) {
            throw KilnException.of(ErrorCode.SHAPE_MISMATCH, "%s takes one input but got %d", describe(), inputs.size());
        }
        return List.of(forwardInternal(inputs.get(0)));
    }
}
