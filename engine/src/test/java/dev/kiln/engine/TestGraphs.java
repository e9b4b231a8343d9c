package dev.kiln.engine;

import dev.kiln.engine.ir.Attributes;
import dev.kiln.engine.ir.GraphBuilder;
import dev.kiln.engine.ir.TensorType;
import dev.kiln.engine.ir.Value;
import dev.kiln.engine.tensor.Shape;
import dev.kiln.engine.tensor.TensorData;

import java.util.Random;

/** Small helpers for building graphs in tests. */
public final class TestGraphs {
    private TestGraphs() {
    }

    public static Value input(GraphBuilder b, String name, Shape shape) {
        return b.input(name, TensorType.float32(shape));
    }

    public static Value scalar(GraphBuilder b, float v) {
        return b.constant(TensorData.scalar(v));
    }

    public static Value constant(GraphBuilder b, long[] shape, float... values) {
        return b.constant(TensorData.ofFloats(shape, values));
    }

    public static Value op(GraphBuilder b, String op, Value... inputs) {
        return b.add1(op, Attributes.EMPTY, null, inputs);
    }

    public static Value op(GraphBuilder b, String op, Attributes attributes, Value... inputs) {
        return b.add1(op, attributes, null, inputs);
    }

    public static TensorData random(long[] shape, long seed) {
        Random random = new Random(seed);
        float[] values = new float[(int) TensorData.elementCount(shape)];
        for (int i = 0; i < values.length; i++) {
            values[i] = (float) random.nextGaussian();
        }
        return TensorData.ofFloats(shape, values);
    }

    /** Runs {@code op}'s reference kernel once on heap inputs of the given shapes (batch 1); returns the one output. */
    public static float[] runReference(String op, Attributes attributes, long[][] shapes, float[]... values) {
        java.util.List<TensorType> types = new java.util.ArrayList<>();
        dev.kiln.engine.backend.Slot[] in = new dev.kiln.engine.backend.Slot[values.length];
        for (int i = 0; i < values.length; i++) {
            TensorType t = TensorType.float32(Shape.of(shapes[i]));
            types.add(t);
            in[i] = new dev.kiln.engine.backend.Slot(java.nio.FloatBuffer.wrap(values[i]), 0, t);
        }
        TensorType outType = dev.kiln.engine.ops.OpRegistry.get(op).inferTypes(types, attributes).get(0);
        dev.kiln.engine.backend.Slot out = new dev.kiln.engine.backend.Slot(java.nio.FloatBuffer.allocate((int) outType.shape().elementCount()), 0, outType);
        dev.kiln.engine.ops.OpRegistry.get(op).newKernel(in, new dev.kiln.engine.backend.Slot[] {out}, attributes).run(1);
        return out.buffer().array();
    }

    /** allclose: |a - e| <= atol + rtol * |e| for every element; NaN must match NaN. */
    public static void assertAllClose(float[] actual, float[] expected, double rtol, double atol, String what) {
        if (actual.length != expected.length) {
            throw new AssertionError(what + ": " + actual.length + " values, expected " + expected.length);
        }
        for (int i = 0; i < expected.length; i++) {
            float a = actual[i];
            float e = expected[i];
            if (Float.isNaN(e) || Float.isNaN(a)) {
                if (Float.isNaN(e) != Float.isNaN(a)) {
                    throw new AssertionError(what + ": element " + i + " is " + a + ", expected " + e);
                }
                continue;
            }
            if (Math.abs(a - e) > atol + rtol * Math.abs(e)) {
                throw new AssertionError(String.format("%s: element %d is %s, expected %s (|diff| %.3e > %.3e)",
                        what, i, a, e, Math.abs(a - e), atol + rtol * Math.abs(e)));
            }
        }
    }
}
