package dev.kiln.engine.ops;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;
import dev.kiln.engine.backend.Kernel;
import dev.kiln.engine.backend.Slot;
import dev.kiln.engine.ir.Attributes;
import dev.kiln.engine.ir.TensorType;
import dev.kiln.engine.tensor.Shape;
import dev.kiln.engine.tensor.TensorData;

import java.util.List;

/**
 * Ops without inputs whose data is known when the graph is built: {@code constant} (data inline in the attribute
 * {@code value}) and {@code parameter} (data in the graph's parameter table under {@code name}). Backends place their
 * data once per model; they have no kernel.
 */
public final class SourceOp extends BaseOp {
    SourceOp(String name, String summary, AttributeSpec attribute) {
        super(name, summary, List.of(), 0, List.of(attribute));
    }

    static SourceOp constant() {
        return new SourceOp(OpRegistry.CONSTANT, "A tensor whose data is stored in the node",
                attr("value", "tensor", true, "the data (dtype, shape, bytes; stored in the weights file)"));
    }

    static SourceOp parameter() {
        return new SourceOp(OpRegistry.PARAMETER, "A named model parameter (weights), stored in the weights file",
                attr("name", "string", true, "the parameter's name, e.g. 0.weight (PyTorch state_dict naming)"));
    }

    @Override
    public List<TensorType> inferTypes(List<TensorType> inputs, Attributes attributes) {
        if (!inputs.isEmpty()) {
            throw KilnException.of(ErrorCode.INVALID_GRAPH, "%s takes no inputs but got %d", name(), inputs.size());
        }
        if (name().equals(OpRegistry.CONSTANT)) {
            TensorData value = attributes.getTensor("value");
            return List.of(new TensorType(value.dtype(), Shape.of(value.shape())));
        }
        throw KilnException.of(ErrorCode.INVALID_GRAPH, "parameter '%s' types come from the graph's parameter table", attributes.getString("name"));
    }

    @Override
    public Kernel newKernel(Slot[] inputs, Slot[] outputs, Attributes attributes) {
        throw new UnsupportedOperationException(name() + " has no kernel: backends place its data once per model");
    }
}
