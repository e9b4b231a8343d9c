package dev.kiln.engine.nn;

import dev.kiln.engine.tensor.Tensor;

import java.util.function.UnaryOperator;

import static java.util.Objects.requireNonNull;

/** A parameter-free block from a function on tensors: custom computations without a class of their own. */
public final class LambdaBlock extends UnaryBlock {
    private final String name;
    private final UnaryOperator<Tensor> function;

    public LambdaBlock(String name, UnaryOperator<Tensor> function) {
        this.name = requireNonNull(name, "name is null");
        this.function = requireNonNull(function, "function is null");
    }

    @Override
    protected Tensor forwardInternal(Tensor x) {
        return function.apply(x);
    }

    @Override
    protected String kind() {
        return "LambdaBlock(" + name + ")";
    }
}
