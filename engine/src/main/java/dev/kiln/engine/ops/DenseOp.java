package dev.kiln.engine.ops;

import dev.kiln.engine.backend.Kernel;
import dev.kiln.engine.backend.Slot;
import dev.kiln.engine.ir.Attributes;
import dev.kiln.engine.ir.TensorType;
import dev.kiln.engine.tensor.Shape;

import java.nio.FloatBuffer;
import java.util.List;

/**
 * The fused dense layer {@code activation(x W^T + bias)} with {@code x [..., K]}, {@code W [N, K]} (PyTorch's Linear
 * layout) and an optional {@code bias [N]}. Produced by {@code DenseActivationFusion}; backends run it as one GEMM with
 * a fused epilogue.
 */
public final class DenseOp extends BaseOp {
    DenseOp() {
        super(OpRegistry.DENSE, "activation(x @ weight^T + bias): the fused dense layer (weight is [out, in])",
                List.of("x", "weight", "bias (optional)"), 2,
                List.of(attr("activation", "string", false, "none (default), relu, sigmoid, tanh or gelu")));
    }

    public static Activation activation(Attributes attributes) {
        return Activation.fromName(attributes.getString("activation", "none"));
    }

    @Override
    public List<TensorType> inferTypes(List<TensorType> inputs, Attributes attributes) {
        checkArity(inputs);
        activation(attributes);
        Shape x = inputs.get(0).shape();
        Shape w = inputs.get(1).shape();
        if (x.rank() < 1 || w.rank() != 2) {
            throw shapeError("dense needs x [..., in] and weight [out, in] but got %s and %s", x, w);
        }
        if (!x.dim(-1).equals(w.dim(1))) {
            throw shapeError("dense expects input [..., %s] for weight %s but got %s", w.dim(1), w, x);
        }
        if (inputs.size() == 3) {
            Shape b = inputs.get(2).shape();
            if (b.rank() != 1 || !b.dim(0).equals(w.dim(0))) {
                throw shapeError("dense bias must be [%s] for weight %s but got %s", w.dim(0), w, b);
            }
        }
        return List.of(TensorType.float32(x.withDim(-1, w.dim(0))));
    }

    @Override
    public Kernel newKernel(Slot[] inputs, Slot[] outputs, Attributes attributes) {
        Slot x = inputs[0];
        Slot w = inputs[1];
        Slot bias = inputs.length > 2 ? inputs[2] : null;
        Slot out = outputs[0];
        Activation act = activation(attributes);
        int k = (int) w.size(1, 1);
        int n = (int) w.size(0, 1);
        return batch -> {
            int rows = x.elementCount(batch) / Math.max(k, 1);
            FloatBuffer xb = x.buffer();
            FloatBuffer wb = w.buffer();
            FloatBuffer ob = out.buffer();
            for (int r = 0; r < rows; r++) {
                for (int j = 0; j < n; j++) {
                    double sum = bias == null ? 0.0 : bias.get(j);
                    int xRow = x.offset() + r * k;
                    int wRow = w.offset() + j * k;
                    for (int p = 0; p < k; p++) {
                        sum += xb.get(xRow + p) * wb.get(wRow + p);
                    }
                    ob.put(out.offset() + r * n + j, act.apply((float) sum));
                }
            }
        };
    }
}
