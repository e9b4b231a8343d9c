package dev.kiln.engine.ops;

import dev.kiln.engine.backend.Kernel;
import dev.kiln.engine.backend.Slot;
import dev.kiln.engine.ir.Attributes;
import dev.kiln.engine.ir.TensorType;
import dev.kiln.engine.tensor.Shape;

import java.util.List;

/**
 * Broadcasts x to the shape of a second tensor ({@code like}), whose values are not read. The tracer emits it for
 * in-place assignment ({@code target.assign(x)}), so the assigned value takes the target's (possibly symbolic) shape.
 */
public final class ExpandOp extends BaseOp {
    ExpandOp() {
        super(OpRegistry.EXPAND_LIKE, "Broadcasts x to the shape of like (like's values are not read)", List.of("x", "like"), 2, List.of());
    }

    @Override
    public List<TensorType> inferTypes(List<TensorType> inputs, Attributes attributes) {
        checkArity(inputs);
        Shape target = inputs.get(1).shape();
        Shape result = Broadcasting.broadcast(name(), inputs.get(0).shape(), target);
        if (!result.equals(target)) {
            throw shapeError("expand_like cannot broadcast %s to %s", inputs.get(0).shape(), target);
        }
        return List.of(inputs.get(1));
    }

    @Override
    public Kernel newKernel(Slot[] inputs, Slot[] outputs, Attributes attributes) {
        // out = second(like, x): the broadcast kernel reads x with broadcast strides.
        return new BinaryOp.BroadcastKernel(inputs[1], inputs[0], outputs[0], (like, x) -> x);
    }
}
