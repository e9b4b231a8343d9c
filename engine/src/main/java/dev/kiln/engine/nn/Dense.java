package dev.kiln.engine.nn;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;
import dev.kiln.engine.ops.Activation;
import dev.kiln.engine.tensor.Dim;
import dev.kiln.engine.tensor.Shape;
import dev.kiln.engine.tensor.Tensor;

import java.util.List;

/**
 * A fully connected layer, {@code activation(x W^T + b)}, on the last axis of {@code x}. Parameters as PyTorch's
 * Linear: {@code weight [units, in]}, {@code bias [units]}. The input width is learned from the first input or from
 * loaded weights unless given.
 */
public class Dense extends UnaryBlock {
    private final long units;
    private final Activation activation;
    private final Parameter weight;
    private final Parameter bias;

    public Dense(long units) {
        this(units, Activation.NONE, true);
    }

    public Dense(long units, Activation activation) {
        this(units, activation, true);
    }

    public Dense(long units, Activation activation, boolean bias) {
        this(units, activation, bias, -1);
    }

    /** {@code inUnits} &lt; 0 defers the input width to the first forward. */
    public Dense(long units, Activation activation, boolean bias, long inUnits) {
        if (units <= 0) {
            throw KilnException.of(ErrorCode.INVALID_ARGUMENT, "Dense needs units > 0 but got %d", units);
        }
        this.units = units;
        this.activation = activation;
        this.weight = addParameter("weight", inUnits < 0 ? null : new long[] {units, inUnits}, inUnits);
        this.bias = bias ? addParameter("bias", new long[] {units}, inUnits) : null;
    }

    public long units() {
        return units;
    }

    public Activation activation() {
        return activation;
    }

    @Override
    protected void acceptLoaded(Parameter parameter, long[] shape) {
        if (parameter == weight && (shape.length != 2 || shape[0] != units)) {
            throw KilnException.of(ErrorCode.PARAMETER_MISMATCH, "Parameter '%s' of %s must be [%d, in] but the weights have %s",
                    parameter.name(), describe(), units, java.util.Arrays.toString(shape));
        }
        if (parameter == weight && bias != null) {
            bias.defineShape(new long[] {units}, shape[1]);
        }
    }

    @Override
    protected void checkInputs(List<Tensor> inputs) {
        Shape x = inputs.get(0).shape();
        if (x.rank() < 1) {
            throw inputShapeError("[..., in]", x);
        }
        Dim in = x.dim(-1);
        long[] w = weight.shape();
        if (w != null) {
            if (!in.equals(Dim.of(w[1]))) {
                throw inputShapeError(x.withDim(-1, Dim.of(w[1])).toString(), x);
            }
        } else {
            if (in.isSymbolic()) {
                throw inputShapeError("a concrete last dimension", x);
            }
            weight.defineShape(new long[] {units, in.size()}, in.size());
            if (bias != null) {
                bias.defineShape(new long[] {units}, in.size());
            }
        }
    }

    @Override
    protected Tensor forwardInternal(Tensor x) {
        Tensor y = x.matmul(weight.value().transpose());
        if (bias != null) {
            y = y.add(bias.value());
        }
        return ActivationBlock.apply(activation, y);
    }
}
