package dev.kiln.engine.tensor;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.Arrays;

import static java.util.Objects.requireNonNull;

/**
 * Concrete tensor contents on the host: a dtype, concrete sizes and little-endian bytes. Immutable by contract:
 * the buffer is read-only to everyone but the code that created it. Used for parameters, constants, and the inputs
 * and outputs of {@code CompiledModel.run}. The bytes may be on the heap, direct, or memory-mapped.
 */
public final class TensorData {
    private final DType dtype;
    private final long[] shape;
    private final ByteBuffer bytes;

    public TensorData(DType dtype, long[] shape, ByteBuffer bytes) {
        this.dtype = requireNonNull(dtype, "dtype is null");
        this.shape = shape.clone();
        long expected = elementCount(shape) * dtype.byteSize();
        if (bytes.remaining() != expected) {
            throw KilnException.of(ErrorCode.CORRUPT_MODEL, "Tensor %s %s needs %d bytes, found %d",
                    dtype, Arrays.toString(shape), expected, bytes.remaining());
        }
        this.bytes = bytes.slice().order(ByteOrder.LITTLE_ENDIAN);
    }

    public static TensorData ofFloats(long[] shape, float[] values) {
        if (elementCount(shape) != values.length) {
            throw KilnException.of(ErrorCode.SHAPE_MISMATCH, "Shape %s holds %d elements but %d values were given",
                    Arrays.toString(shape), elementCount(shape), values.length);
        }
        ByteBuffer buffer = ByteBuffer.allocate(values.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        buffer.asFloatBuffer().put(values);
        return new TensorData(DType.FLOAT32, shape, buffer);
    }

    public static TensorData scalar(float value) {
        return ofFloats(new long[0], new float[] {value});
    }

    public static long elementCount(long[] shape) {
        long n = 1;
        for (long s : shape) {
            n *= s;
        }
        return n;
    }

    public DType dtype() {
        return dtype;
    }

    public long[] shape() {
        return shape.clone();
    }

    public int rank() {
        return shape.length;
    }

    public long elementCount() {
        return elementCount(shape);
    }

    /** A read-only little-endian view of the bytes (a new view object; the bytes are shared). */
    public ByteBuffer bytes() {
        return bytes.asReadOnlyBuffer().order(ByteOrder.LITTLE_ENDIAN);
    }

    /** A read-only float view; fails for other dtypes. */
    public FloatBuffer floats() {
        requireFloat32();
        return bytes().asFloatBuffer();
    }

    public float[] toFloatArray() {
        requireFloat32();
        float[] out = new float[Math.toIntExact(elementCount())];
        bytes().asFloatBuffer().get(out);
        return out;
    }

    private void requireFloat32() {
        if (dtype != DType.FLOAT32) {
            throw KilnException.of(ErrorCode.UNSUPPORTED_OP, "Expected a float32 tensor but got %s %s", dtype, Arrays.toString(shape));
        }
    }

    @Override
    public String toString() {
        return dtype + Arrays.toString(shape);
    }
}
