package dev.kiln.engine.nn;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;
import dev.kiln.engine.tensor.Tensor;

/** Dropout: Kiln is an inference engine, so this is the identity (PyTorch's eval mode) and traces to nothing. */
public final class Dropout extends UnaryBlock {
    private final double rate;

    public Dropout(double rate) {
        if (rate < 0 || rate >= 1) {
            throw KilnException.of(ErrorCode.INVALID_ARGUMENT, "Dropout rate must be in [0, 1) but got %s", rate);
        }
        this.rate = rate;
    }

    public double rate() {
        return rate;
    }

    @Override
    protected Tensor forwardInternal(Tensor x) {
        return x;
    }
}
