package dev.kiln.engine.pass;

import dev.kiln.engine.Kiln;
import dev.kiln.engine.backend.cpu.CpuBackend;
import dev.kiln.engine.exec.CompiledModel;
import dev.kiln.engine.ir.Attributes;
import dev.kiln.engine.ir.Graph;
import dev.kiln.engine.ir.GraphBuilder;
import dev.kiln.engine.ir.Node;
import dev.kiln.engine.ir.Value;
import dev.kiln.engine.ops.OpRegistry;
import dev.kiln.engine.tensor.Shape;
import dev.kiln.engine.tensor.TensorData;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Map;

import static dev.kiln.engine.TestGraphs.constant;
import static dev.kiln.engine.TestGraphs.input;
import static dev.kiln.engine.TestGraphs.op;
import static org.assertj.core.api.Assertions.assertThat;

class BatchNormFoldingTest {
    private static final Pass FOLD = Passes.BATCH_NORM_FOLDING;

    /**
     * A 1x1 conv (W = [[1, 2], [3, 4]], b = [0.5, -1]) then (y - [1, 2]) / [2, 4] * [3, -1] + [0, 10]: per channel
     * scale = [1.5, -0.25], shift = [-1.5, 10.5], so W' = [[1.5, 3], [-0.75, -1]] and b' = [-0.75, 10.75].
     */
    private static Graph convThenBatchNorm(boolean shareConvOutput) {
        GraphBuilder b = new GraphBuilder();
        Value x = input(b, "x", Shape.batched(2, 1, 1));
        Value w = b.parameter("conv.weight", TensorData.ofFloats(new long[] {2, 2, 1, 1}, new float[] {1, 2, 3, 4}));
        Value bias = b.parameter("conv.bias", TensorData.ofFloats(new long[] {2}, new float[] {0.5f, -1}));
        Value y = op(b, OpRegistry.CONV2D, x, w, bias);
        long[] perChannel = {2, 1, 1};
        Value centered = op(b, OpRegistry.SUB, y, constant(b, perChannel, 1, 2));
        Value normalized = op(b, OpRegistry.DIV, centered, constant(b, perChannel, 2, 4));
        Value scaled = op(b, OpRegistry.MUL, constant(b, new long[] {1, 2, 1, 1}, 3, -1), normalized);
        b.output("y", op(b, OpRegistry.ADD, scaled, constant(b, perChannel, 0, 10)));
        if (shareConvOutput) {
            b.output("conv", y);
        }
        return b.build();
    }

    @Test
    void foldsTheNormalizationIntoTheConvolutionsWeightsAndBias() {
        Graph folded = FOLD.apply(convThenBatchNorm(false));

        Node conv = folded.nodes().stream().filter(n -> n.op().equals(OpRegistry.CONV2D)).findFirst().orElseThrow();
        assertThat(folded.users(conv.output())).isEmpty();
        assertThat(folded.isOutput(conv.output())).isTrue();
        assertThat(folded.constantData(conv.input(1)).toFloatArray()).containsExactly(1.5f, 3f, -0.75f, -1f);
        assertThat(folded.constantData(conv.input(1)).shape()).containsExactly(2, 2, 1, 1);
        assertThat(folded.constantData(conv.input(2)).toFloatArray()).containsExactly(-0.75f, 10.75f);
        Graph clean = Passes.DEAD_CODE_ELIMINATION.apply(folded);
        assertThat(clean.opCounts()).doesNotContainKeys(OpRegistry.SUB, OpRegistry.DIV, OpRegistry.MUL, OpRegistry.ADD, OpRegistry.PARAMETER);
        // x = [1, 1]: conv gives [3.5, 6]; (3.5 - 1) / 2 * 3 + 0 = 3.75 and (6 - 2) / 4 * -1 + 10 = 9.
        assertThat(run(clean, new long[] {1, 2, 1, 1}, 1, 1)).containsExactly(3.75f, 9f);
        assertThat(run(convThenBatchNorm(false), new long[] {1, 2, 1, 1}, 1, 1)).containsExactly(3.75f, 9f);
    }

    @Test
    void foldsIntoADenseLayerWhichThenTakesTheActivation() {
        // dense(W = [[1, -1], [2, 0]], no bias) * [2, -3] + [1, 1], then relu, for x = [3, 1]:
        // W x = [2, 6]; * [2, -3] = [4, -18]; + 1 = [5, -17]; relu = [5, 0].
        GraphBuilder b = new GraphBuilder();
        Value x = input(b, "x", Shape.batched(2));
        Value w = b.parameter("fc.weight", TensorData.ofFloats(new long[] {2, 2}, new float[] {1, -1, 2, 0}));
        Value y = op(b, OpRegistry.DENSE, Attributes.of("activation", "none"), x, w);
        Value scaled = op(b, OpRegistry.MUL, y, constant(b, new long[] {2}, 2, -3));
        Value shifted = op(b, OpRegistry.ADD, scaled, constant(b, new long[] {1, 2}, 1, 1));
        b.output("y", op(b, "relu", shifted));
        Graph optimized = new PassPipeline(Passes.standard(), true).run(b.build());

        assertThat(optimized.opCounts()).containsOnlyKeys(OpRegistry.DENSE, OpRegistry.CONSTANT);
        assertThat(optimized.opCounts()).containsEntry(OpRegistry.DENSE, 1);
        Node dense = optimized.nodes().stream().filter(n -> n.op().equals(OpRegistry.DENSE)).findFirst().orElseThrow();
        assertThat(dense.attributes().getString("activation")).isEqualTo("relu");
        assertThat(run(optimized, new long[] {1, 2}, 3, 1)).containsExactly(5f, 0f);
    }

    @Test
    void leavesAConvolutionWhoseOutputIsAlsoReadElsewhere() {
        Graph graph = convThenBatchNorm(true);
        assertThat(FOLD.apply(graph)).isSameAs(graph);
    }

    @Test
    void doesNotFireOnMapsThatAreNotPerChannelAffine() {
        // Varies along W, not channels; divides a constant by the output; dense with an activation already fused.
        GraphBuilder b = new GraphBuilder();
        Value x = input(b, "x", Shape.batched(1, 1, 2));
        Value w = b.parameter("w", TensorData.ofFloats(new long[] {2, 1, 1, 1}, new float[] {1, 2}));
        Value y = op(b, OpRegistry.CONV2D, x, w);
        b.output("a", op(b, OpRegistry.MUL, y, constant(b, new long[] {1, 1, 2}, 2, 3)));
        Value y2 = op(b, OpRegistry.CONV2D, x, w);
        b.output("b", op(b, OpRegistry.DIV, constant(b, new long[] {2, 1, 1}, 2, 3), y2));
        Value v = input(b, "v", Shape.batched(2));
        Value d = op(b, OpRegistry.DENSE, Attributes.of("activation", "relu"), v, b.parameter("fc", TensorData.ofFloats(new long[] {2, 2}, new float[4])));
        b.output("c", op(b, OpRegistry.MUL, d, constant(b, new long[] {2}, 2, 3)));
        Graph graph = b.build();

        assertThat(FOLD.apply(graph)).isSameAs(graph);
    }

    private static float[] run(Graph graph, long[] shape, float... x) {
        try (CompiledModel model = Kiln.compile(graph, new PassPipeline(List.of(), true), CpuBackend.INSTANCE)) {
            Map<String, TensorData> out = model.run(Map.of("x", TensorData.ofFloats(shape, x)));
            return out.get("y").toFloatArray();
        }
    }
}
