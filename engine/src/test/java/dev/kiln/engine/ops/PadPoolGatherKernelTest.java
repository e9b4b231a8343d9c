package dev.kiln.engine.ops;

import dev.kiln.engine.KilnException;
import dev.kiln.engine.ir.Attributes;
import dev.kiln.engine.ir.TensorType;
import dev.kiln.engine.tensor.Shape;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

/**
 * pad, avg_pool2d and gather against hand-worked values; the pad cases are the examples of the ONNX Pad specification
 * and of numpy.pad's documentation, the pooling ones PyTorch's AvgPool2d on 1..9.
 */
class PadPoolGatherKernelTest {
    private static final float[] X3 = {1, 2, 3, 4, 5, 6, 7, 8, 9};

    private static float[] run(String op, Attributes attributes, long[][] shapes, float[]... values) {
        return dev.kiln.engine.TestGraphs.runReference(op, attributes, shapes, values);
    }

    private static float[] pad(String mode, float value, long[] pads, long[] shape, float... x) {
        return run(OpRegistry.PAD, Attributes.of("pads", pads, "mode", mode, "value", (double) value), new long[][] {shape}, x);
    }

    @Test
    void padModesOnNumpysExample() {
        // np.pad([1, 2, 3, 4, 5], (2, 3), mode): constant 9, reflect, edge.
        float[] a = {1, 2, 3, 4, 5};
        long[] pads = {2, 3};
        assertThat(pad("constant", 9, pads, new long[] {5}, a)).containsExactly(9, 9, 1, 2, 3, 4, 5, 9, 9, 9);
        assertThat(pad("reflect", 0, pads, new long[] {5}, a)).containsExactly(3, 2, 1, 2, 3, 4, 5, 4, 3, 2);
        assertThat(pad("edge", 0, pads, new long[] {5}, a)).containsExactly(1, 1, 1, 2, 3, 4, 5, 5, 5, 5);
        // Longer than the axis, numpy (and ONNX's reference) reflect periodically: np.pad([1, 2, 3], (5, 0), 'reflect').
        assertThat(pad("reflect", 0, new long[] {5, 0}, new long[] {3}, 1, 2, 3)).containsExactly(2, 1, 2, 3, 2, 1, 2, 3);
        assertThat(pad("reflect", 0, new long[] {2, 1}, new long[] {1}, 7)).containsExactly(7, 7, 7, 7);
    }

    @Test
    void padModesOnTheOnnxSpecificationsExample() {
        // x = [[1.0, 1.2], [2.3, 3.4], [4.5, 5.7]], pads = [0, 2, 0, 0]: two columns before axis 1.
        float[] x = {1.0f, 1.2f, 2.3f, 3.4f, 4.5f, 5.7f};
        long[] pads = {0, 2, 0, 0};
        long[] shape = {3, 2};
        assertThat(pad("constant", 0, pads, shape, x)).containsExactly(0, 0, 1.0f, 1.2f, 0, 0, 2.3f, 3.4f, 0, 0, 4.5f, 5.7f);
        assertThat(pad("reflect", 0, pads, shape, x)).containsExactly(1.0f, 1.2f, 1.0f, 1.2f, 2.3f, 3.4f, 2.3f, 3.4f, 4.5f, 5.7f, 4.5f, 5.7f);
        assertThat(pad("edge", 0, pads, shape, x)).containsExactly(1.0f, 1.0f, 1.0f, 1.2f, 2.3f, 2.3f, 2.3f, 3.4f, 4.5f, 4.5f, 4.5f, 5.7f);
    }

    @Test
    void padOnSeveralAxesAtOnce() {
        // [[1, 2], [3, 4]] with one row after and one column before, constant -1.
        assertThat(pad("constant", -1, new long[] {0, 1, 1, 0}, new long[] {2, 2}, 1, 2, 3, 4)).containsExactly(-1, 1, 2, -1, 3, 4, -1, -1, -1);
    }

    @Test
    void padRefusesWhatItCannotDo() {
        assertThatThrownBy(() -> pad("edge", 0, new long[] {1, 0}, new long[] {0}))
                .isInstanceOf(KilnException.class).hasMessageContaining("edge padding of the empty axis 0");
        assertThatThrownBy(() -> pad("constant", 0, new long[] {-1, 0}, new long[] {5}, 1, 2, 3, 4, 5))
                .isInstanceOf(KilnException.class).hasMessageContaining("negative pads");
        assertThatThrownBy(() -> pad("wrap", 0, new long[] {1, 0}, new long[] {5}, 1, 2, 3, 4, 5))
                .isInstanceOf(KilnException.class).hasMessageContaining("constant, reflect or edge");
        assertThatThrownBy(() -> OpRegistry.get(OpRegistry.PAD).inferTypes(List.of(TensorType.float32(Shape.batched(3))),
                Attributes.of("pads", new long[] {1, 0, 0, 0})))
                .isInstanceOf(KilnException.class).hasMessageContaining("batch axis");
    }

    @Test
    void averagePoolingWithAndWithoutCountingPads() {
        // kernel 2, stride 1 on 1..9: window means 3, 4, 6, 7.
        assertThat(run(OpRegistry.AVG_POOL2D, Attributes.of("kernel", new long[] {2, 2}), new long[][] {{1, 1, 3, 3}}, X3))
                .containsExactly(3, 4, 6, 7);
        // kernel 3, stride 2, pad 1: the windows hold {1,2,4,5}, {2,3,5,6}, {4,5,7,8}, {5,6,8,9}, sums 12, 16, 24, 28.
        Attributes padded = Attributes.of("kernel", new long[] {3, 3}, "strides", new long[] {2, 2}, "pads", new long[] {1, 1, 1, 1});
        float[] counted = run(OpRegistry.AVG_POOL2D, padded.with("count_include_pad", 1L), new long[][] {{1, 1, 3, 3}}, X3);
        float[] expected = {12 / 9f, 16 / 9f, 24 / 9f, 28 / 9f};
        for (int i = 0; i < 4; i++) {
            assertThat(counted[i]).isCloseTo(expected[i], within(1e-6f));
        }
        assertThat(run(OpRegistry.AVG_POOL2D, padded, new long[][] {{1, 1, 3, 3}}, X3)).containsExactly(3, 4, 6, 7);
    }

    @Test
    void poolingRefusesWindowsThatCannotHoldAValue() {
        // A pad as large as the kernel makes a window of padding only; a kernel larger than the padded input has no
        // output (floor of a negative span is not 0).
        assertThatThrownBy(() -> run(OpRegistry.AVG_POOL2D, Attributes.of("kernel", new long[] {1, 1}, "pads", new long[] {2, 0, 2, 0}),
                new long[][] {{1, 1, 1, 1}}, new float[] {1})).isInstanceOf(KilnException.class).hasMessageContaining("must be smaller than the kernel");
        assertThatThrownBy(() -> run(OpRegistry.MAX_POOL2D, Attributes.of("kernel", new long[] {2, 2}, "strides", new long[] {2, 2}),
                new long[][] {{1, 1, 1, 2}}, new float[] {1, 2})).isInstanceOf(KilnException.class).hasMessageContaining("does not fit");
    }

    @Test
    void gatherPicksRowsAndCountsNegativeIndicesFromTheEnd() {
        float[] table = {1, 2, 3, 4, 5, 6};
        assertThat(run(OpRegistry.GATHER, Attributes.EMPTY, new long[][] {{3, 2}, {2, 2}}, table, new float[] {2, 0, -1, 1}))
                .containsExactly(5, 6, 1, 2, 5, 6, 3, 4);
    }

    @Test
    void gatherRefusesIndicesThatAreNotWholeNumbersInRange() {
        float[] table = {1, 2, 3, 4, 5, 6};
        assertThatThrownBy(() -> run(OpRegistry.GATHER, Attributes.EMPTY, new long[][] {{3, 2}, {3}}, table, new float[] {0, 1.5f, 2}))
                .isInstanceOf(KilnException.class).hasMessageContaining("index 1.5 at position 1").hasMessageContaining("[-3, 3)");
        assertThatThrownBy(() -> run(OpRegistry.GATHER, Attributes.EMPTY, new long[][] {{3, 2}, {2}}, table, new float[] {0, 3}))
                .isInstanceOf(KilnException.class).hasMessageContaining("index 3.0 at position 1");
        assertThatThrownBy(() -> run(OpRegistry.GATHER, Attributes.EMPTY, new long[][] {{3, 2}, {1}}, table, new float[] {Float.NaN}))
                .isInstanceOf(KilnException.class).hasMessageContaining("index NaN");
    }
}
