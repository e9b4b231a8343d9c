package dev.kiln.engine.nn;

import dev.kiln.engine.tensor.Tensor;

/** Softmax over one axis (default the last), as PyTorch's {@code nn.Softmax(dim)}. */
public final class Softmax extends UnaryBlock {
    private final int axis;

    public Softmax() {
        this(-1);
    }

    public Softmax(int axis) {
        this.axis = axis;
    }

    @Override
    protected Tensor forwardInternal(Tensor x) {
        return x.softmax(axis);
    }
}
