package dev.kiln.engine.pass;

import dev.kiln.engine.Kiln;
import dev.kiln.engine.backend.cpu.CpuBackend;
import dev.kiln.engine.exec.CompiledModel;
import dev.kiln.engine.ir.Attributes;
import dev.kiln.engine.ir.Graph;
import dev.kiln.engine.ir.GraphBuilder;
import dev.kiln.engine.ir.Value;
import dev.kiln.engine.ops.MathFunctions;
import dev.kiln.engine.ops.OpRegistry;
import dev.kiln.engine.tensor.Shape;
import dev.kiln.engine.tensor.TensorData;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Map;

import static dev.kiln.engine.TestGraphs.input;
import static dev.kiln.engine.TestGraphs.op;
import static dev.kiln.engine.TestGraphs.scalar;
import static org.assertj.core.api.Assertions.assertThat;

class GeluFusionTest {
    /** dense (W = identity 2x2) then GELU as torch.onnx.export writes it: x * (erf(x / sqrt 2) + 1) * 0.5. */
    private static Graph writtenOut(float half, boolean shareErf) {
        GraphBuilder b = new GraphBuilder();
        Value x = input(b, "x", Shape.batched(2));
        Value h = op(b, OpRegistry.DENSE, Attributes.of("activation", "none"), x,
                b.parameter("w", TensorData.ofFloats(new long[] {2, 2}, new float[] {1, 0, 0, 1})));
        Value erf = op(b, OpRegistry.ERF, op(b, OpRegistry.DIV, h, scalar(b, 1.4142135f)));
        Value sum = op(b, OpRegistry.ADD, scalar(b, 1f), erf);
        b.output("y", op(b, OpRegistry.MUL, op(b, OpRegistry.MUL, h, sum), scalar(b, half)));
        if (shareErf) {
            b.output("erf", erf);
        }
        return b.build();
    }

    @Test
    void becomesOneGeluThatTheDenseLayerAbsorbs() {
        Graph fused = Passes.GELU_FUSION.apply(writtenOut(0.5f, false));
        assertThat(Passes.DEAD_CODE_ELIMINATION.apply(fused).opCounts()).containsEntry("gelu", 1)
                .doesNotContainKeys(OpRegistry.ERF, OpRegistry.DIV, OpRegistry.ADD, OpRegistry.MUL);

        Graph optimized = new PassPipeline(Passes.standard(), true).run(writtenOut(0.5f, false));
        assertThat(optimized.opCounts()).containsOnlyKeys(OpRegistry.DENSE, OpRegistry.PARAMETER);
        assertThat(optimized.nodes().stream().filter(n -> n.op().equals(OpRegistry.DENSE)).findFirst().orElseThrow()
                .attributes().getString("activation")).isEqualTo("gelu");
        // gelu(1) = 0.841344746..., gelu(-2) = -2 * Phi(-2) = -0.0455002638...
        try (CompiledModel model = Kiln.compile(optimized, new PassPipeline(List.of(), true), CpuBackend.INSTANCE)) {
            float[] y = model.run(Map.of("x", TensorData.ofFloats(new long[] {1, 2}, new float[] {1, -2}))).get("y").toFloatArray();
            assertThat((double) y[0]).isCloseTo(0.8413447460685429, org.assertj.core.data.Offset.offset(1e-6));
            assertThat((double) y[1]).isCloseTo(-0.04550026389635842, org.assertj.core.data.Offset.offset(1e-7));
            assertThat((double) MathFunctions.geluFast(-2f)).isCloseTo(y[1], org.assertj.core.data.Offset.offset(1e-9));
        }
    }

    @Test
    void leavesOtherFormulasAndSharedIntermediatesAlone() {
        Graph notHalf = writtenOut(0.4f, false);
        assertThat(Passes.GELU_FUSION.apply(notHalf)).isSameAs(notHalf);
        Graph shared = writtenOut(0.5f, true);
        assertThat(Passes.GELU_FUSION.apply(shared)).isSameAs(shared);
    }
}
