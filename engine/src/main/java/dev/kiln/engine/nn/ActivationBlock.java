package dev.kiln.engine.nn;

import dev.kiln.engine.ops.Activation;
import dev.kiln.engine.tensor.Tensor;

/** An activation as a block of its own (PyTorch's {@code nn.ReLU()} and friends): no parameters. */
public final class ActivationBlock extends UnaryBlock {
    private final Activation activation;

    public ActivationBlock(Activation activation) {
        this.activation = activation;
    }

    public static ActivationBlock relu() {
        return new ActivationBlock(Activation.RELU);
    }

    public static ActivationBlock sigmoid() {
        return new ActivationBlock(Activation.SIGMOID);
    }

    public static ActivationBlock tanh() {
        return new ActivationBlock(Activation.TANH);
    }

    public static ActivationBlock gelu() {
        return new ActivationBlock(Activation.GELU);
    }

    static Tensor apply(Activation activation, Tensor x) {
        switch (activation) {
            case NONE:
                return x;
            case RELU:
                return x.relu();
            case SIGMOID:
                return x.sigmoid();
            case TANH:
                return x.tanh();
            case GELU:
                return x.gelu();
            default:
                throw new IllegalStateException("unknown activation " + activation);
        }
    }

    @Override
    protected Tensor forwardInternal(Tensor x) {
        return apply(activation, x);
    }
}
