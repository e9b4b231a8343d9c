package dev.kiln.engine.ops;

import dev.kiln.engine.KilnException;
import dev.kiln.engine.ir.Attributes;
import dev.kiln.engine.ir.TensorType;
import dev.kiln.engine.tensor.Shape;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** conv2d and max_pool2d on small inputs, every expected value worked out by hand (padded grids written out below). */
class ConvolutionKernelTest {
    private static final float[] X3 = {1, 2, 3, 4, 5, 6, 7, 8, 9};

    private static float[] run(String op, Attributes attributes, long[][] shapes, float[]... values) {
        return dev.kiln.engine.TestGraphs.runReference(op, attributes, shapes, values);
    }

    @Test
    void aPlainConvolution() {
        // w = [[1, 0], [0, -1]]: each output is x[i][j] - x[i+1][j+1] = -4 everywhere.
        float[] y = run(OpRegistry.CONV2D, Attributes.EMPTY, new long[][] {{1, 1, 3, 3}, {1, 1, 2, 2}}, X3, new float[] {1, 0, 0, -1});
        assertThat(y).containsExactly(-4, -4, -4, -4);
    }

    @Test
    void asymmetricPadsAndStride() {
        // pads [top 1, left 0, bottom 0, right 1], stride 2. Padded grid P:
        //   0 0 0 0 / 1 2 3 0 / 4 5 6 0 / 7 8 9 0;  y[oy][ox] = P[2oy][2ox] - P[2oy+1][2ox+1]
        float[] y = run(OpRegistry.CONV2D, Attributes.of("pads", new long[] {1, 0, 0, 1}, "strides", new long[] {2, 2}),
                new long[][] {{1, 1, 3, 3}, {1, 1, 2, 2}}, X3, new float[] {1, 0, 0, -1});
        assertThat(y).containsExactly(-2, 0, -4, 6);
    }

    @Test
    void groupsAndBias() {
        // Two groups of one channel: [3 * 2 + 1, 5 * 10 - 1].
        float[] y = run(OpRegistry.CONV2D, Attributes.of("groups", 2), new long[][] {{1, 2, 1, 1}, {2, 1, 1, 1}, {2}},
                new float[] {3, 5}, new float[] {2, 10}, new float[] {1, -1});
        assertThat(y).containsExactly(7, 49);
    }

    @Test
    void dilation() {
        // A 2x2 kernel [[1, 0], [0, 1]] dilated by 2 spans the 3x3 input: x[0][0] + x[2][2] = 10.
        float[] y = run(OpRegistry.CONV2D, Attributes.of("dilations", new long[] {2, 2}), new long[][] {{1, 1, 3, 3}, {1, 1, 2, 2}},
                X3, new float[] {1, 0, 0, 1});
        assertThat(y).containsExactly(10);
    }

    /** The same hand-worked cases through the CPU backend's im2col + BLAS kernel (a compiled one-node graph). */
    @Test
    void theBlasKernelGivesTheSameHandWorkedValues() {
        assertThat(compiled(Attributes.of("pads", new long[] {1, 0, 0, 1}, "strides", new long[] {2, 2}), new long[] {1, 3, 3}, new long[] {1, 1, 2, 2},
                X3, new float[] {1, 0, 0, -1}, null)).containsExactly(-2, 0, -4, 6);
        assertThat(compiled(Attributes.of("groups", 2), new long[] {2, 1, 1}, new long[] {2, 1, 1, 1}, new float[] {3, 5}, new float[] {2, 10},
                new float[] {1, -1})).containsExactly(7, 49);
        assertThat(compiled(Attributes.of("dilations", new long[] {2, 2}), new long[] {1, 3, 3}, new long[] {1, 1, 2, 2}, X3, new float[] {1, 0, 0, 1}, null))
                .containsExactly(10);
    }

    private static float[] compiled(Attributes attributes, long[] imageShape, long[] weightShape, float[] x, float[] w, float[] bias) {
        dev.kiln.engine.ir.GraphBuilder b = new dev.kiln.engine.ir.GraphBuilder();
        dev.kiln.engine.ir.Value in = b.input("x", TensorType.float32(Shape.batched(imageShape)));
        dev.kiln.engine.ir.Value weight = b.parameter("w", dev.kiln.engine.tensor.TensorData.ofFloats(weightShape, w));
        List<dev.kiln.engine.ir.Value> inputs = new ArrayList<>(List.of(in, weight));
        if (bias != null) {
            inputs.add(b.parameter("b", dev.kiln.engine.tensor.TensorData.ofFloats(new long[] {bias.length}, bias)));
        }
        b.output("y", b.add(OpRegistry.CONV2D, attributes, inputs, null).get(0));
        long[] shape = new long[imageShape.length + 1];
        shape[0] = 1;
        System.arraycopy(imageShape, 0, shape, 1, imageShape.length);
        try (dev.kiln.engine.exec.CompiledModel model = new dev.kiln.engine.exec.CompiledModel(b.build(), List.of(),
                dev.kiln.engine.backend.cpu.CpuBackend.INSTANCE)) {
            return model.run(java.util.Map.of("x", dev.kiln.engine.tensor.TensorData.ofFloats(shape, x))).get("y").toFloatArray();
        }
    }

    @Test
    void maxPoolingWithAndWithoutPadding() {
        float[] x = new float[16];
        for (int i = 0; i < 16; i++) {
            x[i] = i + 1;
        }
        assertThat(run(OpRegistry.MAX_POOL2D, Attributes.of("kernel", new long[] {2, 2}, "strides", new long[] {2, 2}), new long[][] {{1, 1, 4, 4}}, x))
                .containsExactly(6, 8, 14, 16);
        // pads [1, 1, 0, 0]: windows rows/cols {-1,0}, {1,2}: max(1), max(2,3), max(5,9), max(6,7,10,11).
        assertThat(run(OpRegistry.MAX_POOL2D, Attributes.of("kernel", new long[] {2, 2}, "strides", new long[] {2, 2}, "pads", new long[] {1, 1, 0, 0}),
                new long[][] {{1, 1, 4, 4}}, x)).containsExactly(1, 3, 9, 11);
    }

    @Test
    void mismatchedChannelsNameBothShapes() {
        assertThatThrownBy(() -> OpRegistry.get(OpRegistry.CONV2D).inferTypes(
                List.of(TensorType.float32(Shape.batched(3, 8, 8)), TensorType.float32(Shape.of(4, 2, 3, 3))), Attributes.EMPTY))
                .isInstanceOf(KilnException.class)
                .hasMessageContaining("[batch, 3, 8, 8]").hasMessageContaining("[4, 2, 3, 3]");
    }
}
