package dev.kiln.engine.pass;

import dev.kiln.engine.ir.Attributes;
import dev.kiln.engine.ir.Graph;
import dev.kiln.engine.ir.GraphBuilder;
import dev.kiln.engine.ir.GraphPrinter;
import dev.kiln.engine.ir.Value;
import dev.kiln.engine.ops.OpRegistry;
import dev.kiln.engine.tensor.Shape;
import dev.kiln.engine.tensor.TensorData;
import org.junit.jupiter.api.Test;

import static dev.kiln.engine.TestGraphs.input;
import static dev.kiln.engine.TestGraphs.op;
import static org.assertj.core.api.Assertions.assertThat;

class DenseActivationFusionTest {
    private static final Pass FUSE = Passes.DENSE_ACTIVATION_FUSION;

    private static Value linear(GraphBuilder b, Value x, String name, int in, int out) {
        Value w = b.parameter(name + ".weight", TensorData.ofFloats(new long[] {out, in}, new float[out * in]));
        Value wt = op(b, OpRegistry.TRANSPOSE, Attributes.of("perm", new long[] {1, 0}), w);
        Value y = op(b, OpRegistry.MATMUL, x, wt);
        Value bias = b.parameter(name + ".bias", TensorData.ofFloats(new long[] {out}, new float[out]));
        return op(b, OpRegistry.ADD, y, bias);
    }

    @Test
    void fusesMatmulBiasAndActivation() {
        GraphBuilder b = new GraphBuilder();
        Value x = input(b, "x", Shape.batched(4));
        Value h = op(b, "relu", linear(b, x, "0", 4, 3));
        b.output("y", op(b, "gelu", linear(b, h, "1", 3, 2)));

        assertThat(GraphPrinter.print(FUSE.apply(b.build()))).isEqualTo("""
                graph(%x: float32[batch, 4]) {
                  %0: float32[3, 4] = parameter() {name=0.weight}
                  %1: float32[3] = parameter() {name=0.bias}
                  %2: float32[batch, 3] = dense(%x, %0, %1) {activation=relu}
                  %3: float32[2, 3] = parameter() {name=1.weight}
                  %4: float32[2] = parameter() {name=1.bias}
                  %5: float32[batch, 2] = dense(%2, %3, %4) {activation=gelu}
                  return y=%5
                }
                """);
    }

    @Test
    void stopsWhereAnIntermediateHasAnotherReader() {
        // The pre-activation value is also an output: fuse matmul + bias, keep relu separate.
        GraphBuilder b = new GraphBuilder();
        Value x = input(b, "x", Shape.batched(4));
        Value pre = linear(b, x, "0", 4, 3);
        b.output("pre", pre);
        b.output("y", op(b, "relu", pre));

        assertThat(GraphPrinter.print(FUSE.apply(b.build()))).isEqualTo("""
                graph(%x: float32[batch, 4]) {
                  %0: float32[3, 4] = parameter() {name=0.weight}
                  %1: float32[3] = parameter() {name=0.bias}
                  %2: float32[batch, 3] = dense(%x, %0, %1) {activation=none}
                  %3: float32[batch, 3] = relu(%2)
                  return pre=%2, y=%3
                }
                """);
    }

    @Test
    void doesNotFireOnAnIdentityTranspose() {
        // matmul(x, transpose(W, [0, 1])) is x W, not x W^T: fusing it into dense would transpose W.
        GraphBuilder b = new GraphBuilder();
        Value x = input(b, "x", Shape.batched(3));
        Value w = b.parameter("w", TensorData.ofFloats(new long[] {3, 3}, new float[9]));
        Value same = op(b, OpRegistry.TRANSPOSE, Attributes.of("perm", new long[] {0, 1}), w);
        b.output("y", op(b, OpRegistry.MATMUL, x, same));
        Graph graph = b.build();

        assertThat(FUSE.apply(graph)).isSameAs(graph);
    }

    @Test
    void doesNotFireOnAMatmulOfTwoInputs() {
        GraphBuilder b = new GraphBuilder();
        Value x = input(b, "x", Shape.batched(4, 4));
        b.output("y", op(b, "relu", op(b, OpRegistry.MATMUL, x, x)));
        Graph graph = b.build();

        assertThat(FUSE.apply(graph)).isSameAs(graph);
    }

    @Test
    void aConvolutionTakesTheActivationAfterIt() {
        // 1x1 conv with weights [1, -1] over two channels: y = x0 - x1, then relu. x = ([3, 1], [1, 2]) -> [2, -1] -> [2, 0].
        GraphBuilder b = new GraphBuilder();
        Value x = input(b, "x", Shape.batched(2, 1, 2));
        Value w = b.parameter("w", TensorData.ofFloats(new long[] {1, 2, 1, 1}, new float[] {1, -1}));
        b.output("y", op(b, "relu", op(b, OpRegistry.CONV2D, x, w)));
        Graph fused = FUSE.apply(b.build());

        assertThat(GraphPrinter.print(fused)).isEqualTo("""
                graph(%x: float32[batch, 2, 1, 2]) {
                  %0: float32[1, 2, 1, 1] = parameter() {name=w}
                  %1: float32[batch, 1, 1, 2] = conv2d(%x, %0) {activation=relu}
                  return y=%1
                }
                """);
        try (dev.kiln.engine.exec.CompiledModel model = dev.kiln.engine.Kiln.compile(fused, new PassPipeline(java.util.List.of(), true),
                dev.kiln.engine.backend.cpu.CpuBackend.INSTANCE)) {
            float[] y = model.run(java.util.Map.of("x", TensorData.ofFloats(new long[] {1, 2, 1, 2}, new float[] {3, 1, 1, 2}))).get("y").toFloatArray();
            assertThat(y).containsExactly(2f, 0f);
        }
    }
}
