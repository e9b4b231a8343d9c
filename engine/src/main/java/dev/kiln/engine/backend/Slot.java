package dev.kiln.engine.backend;

import dev.kiln.engine.ir.TensorType;

import java.nio.FloatBuffer;

import static java.util.Objects.requireNonNull;

/**
 * Where a value lives while a kernel runs: a float buffer (heap or direct, borrowed, never owned), the element offset
 * of the value inside it, and the value's type (its symbolic shape resolves against the batch at run time).
 * <p>
 * Values are packed (row-major, no gaps), except an input bound to rows that sit apart in the caller's memory
 * ({@code Executor.bindInputRows}): then {@code rowStride} is the distance in floats from one batch row to the next,
 * and only kernels that say they read such rows are given the slot (the others read a packed copy).
 */
public record Slot(FloatBuffer buffer, int offset, TensorType type, int rowStride) {
    public Slot {
        requireNonNull(buffer, "buffer is null");
        requireNonNull(type, "type is null");
        if (rowStride < 0) {
            throw new IllegalArgumentException("rowStride is negative: " + rowStride);
        }
    }

    /** A packed value. */
    public Slot(FloatBuffer buffer, int offset, TensorType type) {
        this(buffer, offset, type, 0);
    }

    /** Whether the rows sit apart ({@link #rowStride} floats from one to the next) rather than packed. */
    public boolean strided() {
        return rowStride != 0;
    }

    public float get(int index) {
        return buffer.get(offset + index);
    }

    public void put(int index, float value) {
        buffer.put(offset + index, value);
    }

    public int elementCount(long batch) {
        return (int) type.shape().elementCount(batch);
    }

    public long size(int axis, long batch) {
        return type.shape().size(axis, batch);
    }

    public int rank() {
        return type.shape().rank();
    }
}
