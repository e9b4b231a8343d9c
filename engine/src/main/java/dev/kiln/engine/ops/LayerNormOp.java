package dev.kiln.engine.ops;

import dev.kiln.engine.backend.Kernel;
import dev.kiln.engine.backend.Slot;
import dev.kiln.engine.ir.Attributes;
import dev.kiln.engine.ir.TensorType;
import dev.kiln.engine.tensor.Shape;

import java.nio.FloatBuffer;
import java.util.List;

/**
 * Layer normalization over the last axis, as PyTorch's LayerNorm and ONNX LayerNormalization (axis -1):
 * {@code (x - mean) / sqrt(var + epsilon) * scale + bias} with the population variance, {@code scale} and {@code bias}
 * of shape {@code [d]}. Produced by {@code LayerNormFusion} from its elementwise form; mean and variance are
 * accumulated in double.
 */
public final class LayerNormOp extends BaseOp {
    LayerNormOp() {
        super(OpRegistry.LAYER_NORM, "layer normalization over the last axis: (x - mean) / sqrt(var + epsilon) * scale + bias",
                List.of("x", "scale", "bias"), 3,
                List.of(attr("epsilon", "float", true, "added to the variance")));
    }

    @Override
    public List<TensorType> inferTypes(List<TensorType> inputs, Attributes attributes) {
        checkArity(inputs);
        Shape x = inputs.get(0).shape();
        if (x.rank() < 1 || x.dim(x.rank() - 1).isSymbolic()) {
            throw shapeError("layer_norm needs a concrete last axis but got %s", x);
        }
        Shape d = Shape.of(x.dim(x.rank() - 1));
        if (!inputs.get(1).shape().equals(d) || !inputs.get(2).shape().equals(d)) {
            throw shapeError("layer_norm of %s needs scale and bias of %s but got %s and %s", x, d, inputs.get(1).shape(), inputs.get(2).shape());
        }
        return List.of(inputs.get(0));
    }

    @Override
    public Kernel newKernel(Slot[] inputs, Slot[] outputs, Attributes attributes) {
        Slot x = inputs[0];
        Slot scale = inputs[1];
        Slot bias = inputs[2];
        Slot out = outputs[0];
        int d = (int) x.type().shape().dim(x.rank() - 1).size();
        double epsilon = attributes.getDouble("epsilon");
        return batch -> {
            int rows = d == 0 ? 0 : x.elementCount(batch) / d;
            FloatBuffer xb = x.buffer();
            FloatBuffer ob = out.buffer();
            for (int r = 0; r < rows; r++) {
                int base = x.offset() + r * d;
                double sum = 0;
                for (int i = 0; i < d; i++) {
                    sum += xb.get(base + i);
                }
                double mean = sum / d;
                double squares = 0;
                for (int i = 0; i < d; i++) {
                    double c = xb.get(base + i) - mean;
                    squares += c * c;
                }
                double inv = 1.0 / Math.sqrt(squares / d + epsilon);
                for (int i = 0; i < d; i++) {
                    ob.put(out.offset() + r * d + i, (float) ((xb.get(base + i) - mean) * inv * scale.get(i) + bias.get(i)));
                }
            }
        };
    }
}
