package dev.kiln.engine.ops;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;
import dev.kiln.engine.backend.Kernel;
import dev.kiln.engine.backend.Slot;
import dev.kiln.engine.ir.Attributes;
import dev.kiln.engine.ir.TensorType;
import dev.kiln.engine.tensor.DType;
import dev.kiln.engine.tensor.Dim;
import dev.kiln.engine.tensor.Shape;

import java.util.List;

/** Joins tensors along one axis; all other dimensions must agree. */
public final class ConcatOp implements OpDef {
    @Override
    public String name() {
        return OpRegistry.CONCAT;
    }

    @Override
    public String summary() {
        return "Joins its inputs (one or more) along axis";
    }

    @Override
    public List<AttributeSpec> attributes() {
        return List.of(new AttributeSpec("axis", "int", true, "the axis to join on, negative counts from the end"));
    }

    @Override
    public List<String> inputNames() {
        return List.of("inputs... (variadic)");
    }

    @Override
    public List<TensorType> inferTypes(List<TensorType> inputs, Attributes attributes) {
        if (inputs.isEmpty()) {
            throw KilnException.of(ErrorCode.INVALID_GRAPH, "concat needs at least one input");
        }
        Shape first = inputs.get(0).shape();
        int axis = first.normalizeAxis((int) attributes.getLong("axis"));
        Dim total = Dim.of(0);
        for (TensorType t : inputs) {
            if (t.dtype() != DType.FLOAT32) {
                throw KilnException.of(ErrorCode.UNSUPPORTED_OP, "concat input is %s; Kiln's kernels support float32 only", t);
            }
            Shape s = t.shape();
            if (s.rank() != first.rank()) {
                throw BaseOp.shapeError("concat on axis %d: ranks differ (%s vs %s)", axis, first, s);
            }
            for (int i = 0; i < s.rank(); i++) {
                if (i != axis && !s.dim(i).equals(first.dim(i))) {
                    throw BaseOp.shapeError("concat on axis %d: %s and %s differ at dimension %d", axis, first, s, i);
                }
            }
            Dim d = s.dim(axis);
            if (total.isSymbolic() && d.isSymbolic() || total.factor() != 0 && total.isSymbolic() != d.isSymbolic()) {
                throw BaseOp.shapeError("concat on axis %d: cannot add %s to %s", axis, d, total);
            }
            total = d.isSymbolic() ? d.times(1) : (total.isSymbolic() ? total : Dim.of(total.factor() + d.factor()));
        }
        return List.of(TensorType.float32(first.withDim(axis, total)));
    }

    @Override
    public Kernel newKernel(Slot[] inputs, Slot[] outputs, Attributes attributes) {
        Slot out = outputs[0];
        int axis = out.type().shape().normalizeAxis((int) attributes.getLong("axis"));
        return batch -> {
            int outer = 1;
            for (int i = 0; i < axis; i++) {
                outer *= (int) out.size(i, batch);
            }
            int outChunk = out.elementCount(batch) / Math.max(outer, 1);
            int position = 0;
            for (Slot in : inputs) {
                int chunk = outer == 0 ? 0 : in.elementCount(batch) / outer;
                for (int o = 0; o < outer; o++) {
                    for (int j = 0; j < chunk; j++) {
                        out.put(o * outChunk + position + j, in.get(o * chunk + j));
                    }
                }
                position += chunk;
            }
        };
    }
}
