package dev.kiln.engine.pass;

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

class DeadCodeEliminationTest {
    private static final Pass DCE = Passes.DEAD_CODE_ELIMINATION;

    @Test
    void removesUnreadNodesAndTheirParameters() {
        GraphBuilder b = new GraphBuilder();
        Value x = input(b, "x", Shape.batched(2));
        Value unused = b.parameter("unused", TensorData.ofFloats(new long[] {2}, new float[] {1, 2}));
        op(b, OpRegistry.ADD, x, unused);
        op(b, OpRegistry.EXP, x);
        b.output("y", op(b, "relu", x));

        Graph after = DCE.apply(b.build());

        assertThat(GraphPrinter.print(after)).isEqualTo("""
                graph(%x: float32[batch, 2]) {
                  %0: float32[batch, 2] = relu(%x)
                  return y=%0
                }
                """);
        assertThat(after.parameters()).isEmpty();
    }

    @Test
    void keepsEveryOutputEvenWhenOneIsAnInput() {
        GraphBuilder b = new GraphBuilder();
        Value x = input(b, "x", Shape.batched(2));
        b.output("same", x);
        b.output("relu", op(b, "relu", x));
        Graph graph = b.build();

        assertThat(DCE.apply(graph)).isSameAs(graph);
    }
}
