package dev.kiln.engine.ops;

import dev.kiln.engine.backend.Kernel;
import dev.kiln.engine.backend.Slot;
import dev.kiln.engine.ir.Attributes;
import dev.kiln.engine.ir.TensorType;
import dev.kiln.engine.tensor.Dim;
import dev.kiln.engine.tensor.Shape;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/** Cuts a tensor along one (concrete) axis into pieces of the given sizes; one output per piece. */
public final class SplitOp extends BaseOp {
    SplitOp() {
        super(OpRegistry.SPLIT, "Cuts x along axis into pieces of the given sizes (one output each)", List.of("x"), 1,
                List.of(attr("axis", "int", true, "the axis to cut, negative counts from the end; must be concrete"),
                        attr("sizes", "int[]", true, "the size of each piece; they sum to the axis size")));
    }

    @Override
    public List<TensorType> inferTypes(List<TensorType> inputs, Attributes attributes) {
        checkArity(inputs);
        Shape in = inputs.get(0).shape();
        int axis = in.normalizeAxis((int) attributes.getLong("axis"));
        long[] sizes = attributes.getLongs("sizes");
        Dim d = in.dim(axis);
        if (d.isSymbolic()) {
            throw shapeError("split of %s on axis %d: the axis is symbolic (%s); split a concrete axis", in, axis, d);
        }
        if (Arrays.stream(sizes).sum() != d.size() || Arrays.stream(sizes).anyMatch(s -> s < 0)) {
            throw shapeError("split of %s on axis %d: sizes %s do not sum to %d", in, axis, Arrays.toString(sizes), d.size());
        }
        List<TensorType> out = new ArrayList<>();
        for (long s : sizes) {
            out.add(TensorType.float32(in.withDim(axis, Dim.of(s))));
        }
        return out;
    }

    @Override
    public Kernel newKernel(Slot[] inputs, Slot[] outputs, Attributes attributes) {
        Slot in = inputs[0];
        int axis = in.type().shape().normalizeAxis((int) attributes.getLong("axis"));
        return batch -> {
            int outer = 1;
            for (int i = 0; i < axis; i++) {
                outer *= (int) in.size(i, batch);
            }
            int inChunk = outer == 0 ? 0 : in.elementCount(batch) / outer;
            int position = 0;
            for (Slot out : outputs) {
                int chunk = outer == 0 ? 0 : out.elementCount(batch) / outer;
                for (int o = 0; o < outer; o++) {
                    for (int j = 0; j < chunk; j++) {
                        out.put(o * chunk + j, in.get(o * inChunk + position + j));
                    }
                }
                position += chunk;
            }
        };
    }
}
