package dev.kiln.engine.pass;

import dev.kiln.engine.Kiln;
import dev.kiln.engine.backend.cpu.CpuBackend;
import dev.kiln.engine.exec.CompiledModel;
import dev.kiln.engine.ir.Graph;
import dev.kiln.engine.ir.Signature;
import dev.kiln.engine.nn.LambdaBlock;
import dev.kiln.engine.nn.LayerNorm;
import dev.kiln.engine.nn.Sequential;
import dev.kiln.engine.ops.OpRegistry;
import dev.kiln.engine.tensor.Shape;
import dev.kiln.engine.tensor.TensorData;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

class LayerNormFusionTest {
    private static LayerNorm norm() {
        LayerNorm ln = new LayerNorm(2, 0f);
        ln.loadParameters(Map.of("weight", TensorData.ofFloats(new long[] {2}, new float[] {2, 1}),
                "bias", TensorData.ofFloats(new long[] {2}, new float[] {0, 5})));
        return ln;
    }

    private static final Signature SIGNATURE = Signature.builder().input("x", Shape.batched(3, 2)).output("y").build();

    @Test
    void theBlocksLayerNormBecomesOneNodeWithTheSameValues() {
        Graph optimized = new PassPipeline(Passes.standard(), true).run(Kiln.trace(norm(), SIGNATURE));
        assertThat(optimized.opCounts()).containsEntry(OpRegistry.LAYER_NORM, 1)
                .doesNotContainKeys(OpRegistry.REDUCE_MEAN, OpRegistry.SUB, OpRegistry.DIV, OpRegistry.SQRT, OpRegistry.MUL, OpRegistry.ADD);
        // Rows [1, 3], [2, 6], [7, 5]: means 2 / 4 / 6, deviations 1 / 2 / 1 -> [-1, 1], [-1, 1], [1, -1] -> * [2, 1] + [0, 5].
        try (CompiledModel model = Kiln.compile(optimized, new PassPipeline(List.of(), true), CpuBackend.INSTANCE)) {
            float[] y = model.run(Map.of("x", TensorData.ofFloats(new long[] {1, 3, 2}, new float[] {1, 3, 2, 6, 7, 5}))).get("y").toFloatArray();
            float[] expected = {-2, 6, -2, 6, 2, 4};
            for (int i = 0; i < 6; i++) {
                assertThat(y[i]).as("element %d", i).isCloseTo(expected[i], within(1e-6f));
            }
        }
        try (CompiledModel unfused = Kiln.compile(norm(), SIGNATURE, new PassPipeline(List.of(), true))) {
            assertThat(unfused.graph().opCounts()).doesNotContainKey(OpRegistry.LAYER_NORM);
        }
    }

    @Test
    void aScaleOfOnesAndABiasOfZerosThatSimplificationRemovedStillFuse() {
        // Fresh PyTorch LayerNorms export weight = 1 and bias = 0; x * 1 and x + 0 are simplified away first.
        for (float[] bias : new float[][] {{0, 0}, {0, 5}}) {
            LayerNorm ln = new LayerNorm(2, 0f);
            ln.loadParameters(Map.of("weight", TensorData.ofFloats(new long[] {2}, new float[] {1, 1}),
                    "bias", TensorData.ofFloats(new long[] {2}, bias)));
            Graph optimized = new PassPipeline(Passes.standard(), true).run(Kiln.trace(ln, SIGNATURE));
            assertThat(optimized.opCounts()).as("bias %s", java.util.Arrays.toString(bias)).containsEntry(OpRegistry.LAYER_NORM, 1)
                    .doesNotContainKeys(OpRegistry.REDUCE_MEAN, OpRegistry.SUB, OpRegistry.DIV, OpRegistry.MUL, OpRegistry.ADD);
            try (CompiledModel model = Kiln.compile(optimized, new PassPipeline(List.of(), true), CpuBackend.INSTANCE)) {
                float[] y = model.run(Map.of("x", TensorData.ofFloats(new long[] {1, 3, 2}, new float[] {1, 3, 2, 6, 7, 5}))).get("y").toFloatArray();
                float[] expected = {-1 + bias[0], 1 + bias[1], -1 + bias[0], 1 + bias[1], 1 + bias[0], -1 + bias[1]};
                for (int i = 0; i < 6; i++) {
                    assertThat(y[i]).as("element %d", i).isCloseTo(expected[i], within(1e-6f));
                }
            }
        }
    }

    @Test
    void leavesTheArithmeticAloneWhenAnIntermediateIsReadElsewhere() {
        // The centred value also feeds the output: fusing would lose it.
        Sequential net = new Sequential().add(new LambdaBlock("shared", x -> {
            var centered = x.sub(x.mean(true, -1));
            var variance = centered.mul(centered).mean(true, -1);
            return centered.div(variance.add(1e-5f).sqrt()).add(centered);
        }));
        Graph graph = Kiln.trace(net, SIGNATURE);
        assertThat(Passes.LAYER_NORM_FUSION.apply(graph).opCounts()).doesNotContainKey(OpRegistry.LAYER_NORM);
    }
}
