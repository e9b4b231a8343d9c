package dev.kiln.engine.nn;

import dev.kiln.engine.Kiln;
import dev.kiln.engine.KilnException;
import dev.kiln.engine.exec.CompiledModel;
import dev.kiln.engine.ir.Signature;
import dev.kiln.engine.tensor.Shape;
import dev.kiln.engine.tensor.Tensor;
import dev.kiln.engine.tensor.TensorData;
import org.junit.jupiter.api.Test;

import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

/** AvgPool2d, Tensor.pad and Embedding, eager and compiled, against values worked out by hand. */
class PoolPadEmbeddingBlockTest {
    private static float[] eager(Block block, TensorData x) {
        return block.forward(Tensor.of(x)).toFloatArray();
    }

    private static float[] compiled(Block block, Shape input, TensorData x) {
        try (CompiledModel model = Kiln.compile(block, Signature.builder().input("x", input).output("y").build())) {
            return model.run(Map.of("x", x)).get("y").toFloatArray();
        }
    }

    private static void assertBoth(Block block, Shape input, TensorData x, float... expected) {
        float[] e = eager(block, x);
        float[] c = compiled(block, input, x);
        assertThat(e).hasSameSizeAs(expected);
        assertThat(c).hasSameSizeAs(expected);
        for (int i = 0; i < expected.length; i++) {
            assertThat(e[i]).as("eager %d", i).isCloseTo(expected[i], within(1e-5f));
            assertThat(c[i]).as("compiled %d", i).isCloseTo(expected[i], within(1e-5f));
        }
    }

    @Test
    void avgPool2dLikePyTorch() {
        // Two images: 1..9 and twice that. AvgPool2d(3, stride 2, padding 1), pads counted (PyTorch's default): window
        // sums 12, 16, 24, 28 over 9; not counted: over 4 (the positions inside).
        float[] x = new float[18];
        for (int i = 0; i < 9; i++) {
            x[i] = i + 1;
            x[9 + i] = 2 * (i + 1);
        }
        TensorData data = TensorData.ofFloats(new long[] {2, 1, 3, 3}, x);
        assertBoth(new AvgPool2d(3, 2, 1, true), Shape.batched(1, 3, 3), data,
                12 / 9f, 16 / 9f, 24 / 9f, 28 / 9f, 24 / 9f, 32 / 9f, 48 / 9f, 56 / 9f);
        assertBoth(new AvgPool2d(3, 2, 1, false), Shape.batched(1, 3, 3), data, 3, 4, 6, 7, 6, 8, 12, 14);
        assertBoth(new AvgPool2d(2), Shape.batched(1, 3, 3), data, 3, 6);
    }

    @Test
    void padReflectsAndFillsEagerAndCompiled() {
        // Rows [1, 2, 3] and [4, 5, 6]: reflect 2 before and 1 after along the last axis.
        TensorData data = TensorData.ofFloats(new long[] {2, 3}, new float[] {1, 2, 3, 4, 5, 6});
        assertBoth(new LambdaBlock("reflect", t -> t.pad(new long[] {0, 2, 0, 1}, "reflect", 0)), Shape.batched(3), data,
                3, 2, 1, 2, 3, 2, 6, 5, 4, 5, 6, 5);
        assertBoth(new LambdaBlock("fill", t -> t.pad(new long[] {0, 1, 0, 0}, "constant", -7)), Shape.batched(3), data,
                -7, 1, 2, 3, -7, 4, 5, 6);
    }

    @Test
    void embeddingLooksUpRowsEagerAndCompiled() {
        Embedding embedding = new Embedding(3, 2);
        embedding.loadParameters(Map.of("weight", TensorData.ofFloats(new long[] {3, 2}, new float[] {1, 2, 3, 4, 5, 6})));
        TensorData ids = TensorData.ofFloats(new long[] {2, 2}, new float[] {2, 0, 1, 1});
        assertBoth(embedding, Shape.batched(2), ids, 5, 6, 1, 2, 3, 4, 3, 4);

        // Feeding a dense layer: mean of the two embeddings, then y = e0 - e1 (W = [[1, -1]], no bias).
        Sequential net = new Sequential().add(embedding).add(new LambdaBlock("mean", t -> t.mean(false, 1))).add(new Dense(1, dev.kiln.engine.ops.Activation.NONE, false, 2));
        net.loadParameters(Map.of("0.weight", TensorData.ofFloats(new long[] {3, 2}, new float[] {1, 2, 3, 4, 5, 6}),
                "2.weight", TensorData.ofFloats(new long[] {1, 2}, new float[] {1, -1})));
        // Row 1: mean([5, 6], [1, 2]) = [3, 4] -> -1; row 2: [3, 4] -> -1.
        assertBoth(net, Shape.batched(2), ids, -1, -1);
    }

    @Test
    void anEmbeddingIdOutOfRangeFailsNamingIt() {
        Embedding embedding = new Embedding(3, 2);
        TensorData ids = TensorData.ofFloats(new long[] {1, 2}, new float[] {1, 3});
        assertThatThrownBy(() -> compiled(embedding, Shape.batched(2), ids))
                .isInstanceOf(KilnException.class).hasMessageContaining("index 3.0 at position 1").hasMessageContaining("[-3, 3)");
        assertThatThrownBy(() -> eager(embedding, ids)).isInstanceOf(KilnException.class).hasMessageContaining("index 3.0 at position 1");
    }
}
