package dev.kiln.engine.backend;

import dev.kiln.engine.ir.TensorType;

import java.nio.FloatBuffer;

import static java.util.Objects.requireNonNull;

/**
 * Where a value lives while a kernel runs: a float buffer (heap or direct, borrowed, never owned), the element offset
 * of the value inside it, and the value's type (its symbolic shape resolves against the batch at run time).
 */
public record Slot(FloatBuffer buffer, int offset, TensorType type) {
    public Slot {
        requireNonNull(buffer, "buffer is null");
        requireNonNull(type, "type is null");
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
