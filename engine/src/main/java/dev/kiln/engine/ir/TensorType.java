package dev.kiln.engine.ir;

import dev.kiln.engine.tensor.DType;
import dev.kiln.engine.tensor.Shape;

import static java.util.Objects.requireNonNull;

/** The static type of a value: dtype and (possibly symbolic) shape. */
public record TensorType(DType dtype, Shape shape) {
    public TensorType {
        requireNonNull(dtype, "dtype is null");
        requireNonNull(shape, "shape is null");
    }

    public static TensorType float32(Shape shape) {
        return new TensorType(DType.FLOAT32, shape);
    }

    public int rank() {
        return shape.rank();
    }

    @Override
    public String toString() {
        return dtype + shape.toString();
    }
}
