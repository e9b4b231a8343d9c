package dev.kiln.engine.ops;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;
import dev.kiln.engine.backend.Kernel;
import dev.kiln.engine.backend.Slot;
import dev.kiln.engine.ir.Attributes;
import dev.kiln.engine.ir.TensorType;
import dev.kiln.engine.tensor.Dim;
import dev.kiln.engine.tensor.Shape;

import java.util.ArrayList;
import java.util.List;

/**
 * Rows of a table picked by index, as ONNX Gather on axis 0 and PyTorch's Embedding: {@code table [V, d...]},
 * {@code indices [i...]} → {@code [i..., d...]}. Kiln's tensors are float32, so indices are float32 holding integers
 * (exact up to 2^24); an index that is not an integer in [-V, V) fails the call, naming the index and its position.
 * Negative indices count from the end, as in ONNX.
 */
public final class GatherOp extends BaseOp {
    GatherOp() {
        super(OpRegistry.GATHER, "rows of a table by index (ONNX Gather on axis 0, Embedding); indices are whole float32 values",
                List.of("table", "indices"), 2, List.of());
    }

    @Override
    public List<TensorType> inferTypes(List<TensorType> inputs, Attributes attributes) {
        checkArity(inputs);
        Shape table = inputs.get(0).shape();
        Shape indices = inputs.get(1).shape();
        if (table.rank() < 1 || table.dim(0).isSymbolic()) {
            throw shapeError("gather needs a table with a concrete first axis but got %s", table);
        }
        for (int i = 1; i < table.rank(); i++) {
            if (table.dim(i).isSymbolic()) {
                throw shapeError("gather needs a table of concrete shape but got %s", table);
            }
        }
        List<Dim> dims = new ArrayList<>(indices.dims());
        for (int i = 1; i < table.rank(); i++) {
            dims.add(table.dim(i));
        }
        return List.of(TensorType.float32(Shape.of(dims.toArray(Dim[]::new))));
    }

    @Override
    public Kernel newKernel(Slot[] inputs, Slot[] outputs, Attributes attributes) {
        Slot table = inputs[0];
        Slot indices = inputs[1];
        Slot out = outputs[0];
        int rows = (int) table.size(0, 1);
        return batch -> {
            int width = rows == 0 ? 0 : table.elementCount(batch) / rows;
            int count = indices.elementCount(batch);
            for (int i = 0; i < count; i++) {
                float v = indices.get(i);
                if (v != Math.rint(v) || v < -rows || v >= rows) {
                    throw KilnException.of(ErrorCode.BAD_INPUT, "gather: index %s at position %d of %s is not an integer in [%d, %d)",
                            v, i, indices.type(), -rows, rows);
                }
                int row = v < 0 ? (int) v + rows : (int) v;
                for (int j = 0; j < width; j++) {
                    out.put(i * width + j, table.get(row * width + j));
                }
            }
        };
    }
}
