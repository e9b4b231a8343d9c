package dev.kiln.engine.ops;

import dev.kiln.engine.backend.Slot;
import dev.kiln.engine.ir.Attributes;
import dev.kiln.engine.ir.TensorType;
import dev.kiln.engine.tensor.Shape;
import org.junit.jupiter.api.Test;

import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

/** Reference kernels on small inputs whose results are worked out by hand. */
class ReferenceKernelTest {
    /** Runs op on concrete inputs (shape, values pairs); returns the outputs' values. */
    private static List<float[]> run(String op, Attributes attributes, Object... shapesAndValues) {
        List<TensorType> types = new ArrayList<>();
        Slot[] in = new Slot[shapesAndValues.length / 2];
        for (int i = 0; i < in.length; i++) {
            TensorType t = TensorType.float32(Shape.of((long[]) shapesAndValues[2 * i]));
            types.add(t);
            in[i] = new Slot(FloatBuffer.wrap((float[]) shapesAndValues[2 * i + 1]), 0, t);
        }
        List<TensorType> outTypes = OpRegistry.get(op).inferTypes(types, attributes);
        Slot[] out = new Slot[outTypes.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = new Slot(FloatBuffer.allocate((int) outTypes.get(i).shape().elementCount()), 0, outTypes.get(i));
        }
        OpRegistry.get(op).newKernel(in, out, attributes).run(1);
        List<float[]> result = new ArrayList<>();
        for (Slot s : out) {
            result.add(s.buffer().array());
        }
        return result;
    }

    private static long[] s(long... dims) {
        return dims;
    }

    @Test
    void addBroadcastsBothWays() {
        // [2,1] + [3] -> [2,3]: rows 10, 20 plus columns 1, 2, 3.
        float[] out = run(OpRegistry.ADD, Attributes.EMPTY, s(2, 1), new float[] {10, 20}, s(3), new float[] {1, 2, 3}).get(0);
        assertThat(out).containsExactly(11, 12, 13, 21, 22, 23);
    }

    @Test
    void softmaxOverTheFirstAxis() {
        // Columns [0, ln 3] -> [1/4, 3/4]; [0, 0] -> [1/2, 1/2].
        float ln3 = (float) Math.log(3);
        float[] out = run(OpRegistry.SOFTMAX, Attributes.of("axis", 0), s(2, 2), new float[] {0, 0, ln3, 0}).get(0);
        assertThat(out[0]).isCloseTo(0.25f, within(1e-6f));
        assertThat(out[1]).isCloseTo(0.5f, within(1e-6f));
        assertThat(out[2]).isCloseTo(0.75f, within(1e-6f));
        assertThat(out[3]).isCloseTo(0.5f, within(1e-6f));
    }

    @Test
    void reduceMeanAndSumOverAxes() {
        float[] x = {1, 2, 3, 4, 5, 6};
        assertThat(run(OpRegistry.REDUCE_SUM, Attributes.of("axes", new long[] {1}, "keepdims", 0), s(2, 3), x).get(0)).containsExactly(6, 15);
        assertThat(run(OpRegistry.REDUCE_MEAN, Attributes.of("axes", new long[] {0}, "keepdims", 1), s(2, 3), x).get(0)).containsExactly(2.5f, 3.5f, 4.5f);
        assertThat(run(OpRegistry.REDUCE_MEAN, Attributes.of("axes", new long[] {0, -1}), s(2, 3), x).get(0)).containsExactly(3.5f);
    }

    @Test
    void transposeSplitAndConcat() {
        float[] x = {1, 2, 3, 4, 5, 6};
        assertThat(run(OpRegistry.TRANSPOSE, Attributes.of("perm", new long[] {1, 0}), s(2, 3), x).get(0)).containsExactly(1, 4, 2, 5, 3, 6);
        List<float[]> parts = run(OpRegistry.SPLIT, Attributes.of("axis", -1, "sizes", new long[] {1, 2}), s(2, 3), x);
        assertThat(parts.get(0)).containsExactly(1, 4);
        assertThat(parts.get(1)).containsExactly(2, 3, 5, 6);
        assertThat(run(OpRegistry.CONCAT, Attributes.of("axis", 1), s(2, 2), new float[] {2, 3, 5, 6}, s(2, 1), new float[] {1, 4}).get(0))
                .containsExactly(2, 3, 1, 5, 6, 4);
    }

    @Test
    void batchedMatmulBroadcastsTheLeftBatch() {
        // a: two 1x2 matrices [1,2] and [3,4]; b: one 2x1 matrix [10, 1] broadcast to both.
        float[] out = run(OpRegistry.MATMUL, Attributes.EMPTY, s(2, 1, 2), new float[] {1, 2, 3, 4}, s(2, 1), new float[] {10, 1}).get(0);
        assertThat(out).containsExactly(12, 34);
    }

    @Test
    void denseIsXTimesWeightTransposedPlusBias() {
        // x [1,2] = [1, 2]; W [[1,1],[2,-1]]; b [0, 1] -> [3, 0 + 1] = [3, 1]; relu keeps both.
        float[] out = run(OpRegistry.DENSE, Attributes.of("activation", "relu"), s(1, 2), new float[] {1, 2},
                s(2, 2), new float[] {1, 1, 2, -1}, s(2), new float[] {0, 1}).get(0);
        assertThat(out).containsExactly(3, 1);
    }

    @Test
    void powAndErfAndGeluElementwise() {
        assertThat(run(OpRegistry.POW, Attributes.EMPTY, s(3), new float[] {2, 3, 4}, s(), new float[] {2}).get(0)).containsExactly(4, 9, 16);
        // gelu(1) = 0.5 * (1 + erf(1/sqrt 2)) = 0.841344746...
        assertThat(run("gelu", Attributes.EMPTY, s(1), new float[] {1}).get(0)[0]).isCloseTo(0.8413447f, within(1e-6f));
    }
}
