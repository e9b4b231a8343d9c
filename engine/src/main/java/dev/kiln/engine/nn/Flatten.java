package dev.kiln.engine.nn;

import dev.kiln.engine.tensor.Tensor;

/** Flattens every axis after the first: {@code [batch, a, b] -> [batch, a*b]} (PyTorch's {@code nn.Flatten()}). */
public final class Flatten extends UnaryBlock {
    @Override
    protected Tensor forwardInternal(Tensor x) {
        if (x.shape().rank() == 2) {
            return x;
        }
        return x.reshape(0, -1);
    }
}
