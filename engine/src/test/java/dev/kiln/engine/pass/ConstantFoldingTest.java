package dev.kiln.engine.pass;

import dev.kiln.engine.ir.Attributes;
import dev.kiln.engine.ir.Graph;
import dev.kiln.engine.ir.GraphBuilder;
import dev.kiln.engine.ir.GraphPrinter;
import dev.kiln.engine.ir.Value;
import dev.kiln.engine.ops.OpRegistry;
import dev.kiln.engine.tensor.Shape;
import org.junit.jupiter.api.Test;

import static dev.kiln.engine.TestGraphs.constant;
import static dev.kiln.engine.TestGraphs.input;
import static dev.kiln.engine.TestGraphs.op;
import static dev.kiln.engine.TestGraphs.scalar;
import static org.assertj.core.api.Assertions.assertThat;

class ConstantFoldingTest {
    private static final Pass FOLD = Passes.CONSTANT_FOLDING;

    @Test
    void theSeedExampleFoldsToTen() {
        // (1 + 2) + (3 + 4), the seed's example: a compiler sees the whole program and replaces it by 10.
        GraphBuilder b = new GraphBuilder();
        Value left = op(b, OpRegistry.ADD, scalar(b, 1), scalar(b, 2));
        Value right = op(b, OpRegistry.ADD, scalar(b, 3), scalar(b, 4));
        b.output("y", op(b, OpRegistry.ADD, left, right));

        Graph after = Passes.DEAD_CODE_ELIMINATION.apply(FOLD.apply(b.build()));

        assertThat(GraphPrinter.print(after)).isEqualTo("""
                graph() {
                  %0: float32[] = constant() {value=float32[] [10.0]}
                  return y=%0
                }
                """);
    }

    @Test
    void foldsConstantSubtreesButNotWhatDependsOnInputs() {
        GraphBuilder b = new GraphBuilder();
        Value x = input(b, "x", Shape.batched(2));
        Value scale = op(b, OpRegistry.MUL, constant(b, new long[] {2}, 1, 2), scalar(b, 3));
        b.output("y", op(b, OpRegistry.MUL, x, scale));

        Graph after = Passes.DEAD_CODE_ELIMINATION.apply(FOLD.apply(b.build()));

        assertThat(GraphPrinter.print(after)).isEqualTo("""
                graph(%x: float32[batch, 2]) {
                  %0: float32[2] = constant() {value=float32[2] [3.0, 6.0]}
                  %1: float32[batch, 2] = mul(%x, %0)
                  return y=%1
                }
                """);
    }

    @Test
    void foldsTransposeOfAParameterByHandComputedValues() {
        GraphBuilder b = new GraphBuilder();
        Value w = b.parameter("w", dev.kiln.engine.tensor.TensorData.ofFloats(new long[] {2, 3}, new float[] {1, 2, 3, 4, 5, 6}));
        b.output("t", op(b, OpRegistry.TRANSPOSE, Attributes.of("perm", new long[] {1, 0}), w));

        Graph after = Passes.DEAD_CODE_ELIMINATION.apply(FOLD.apply(b.build()));

        assertThat(GraphPrinter.print(after)).contains("constant() {value=float32[3, 2] [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]}");
        assertThat(after.parameters()).isEmpty();
    }

    @Test
    void doesNotFireWithoutConstantInputs() {
        GraphBuilder b = new GraphBuilder();
        Value x = input(b, "x", Shape.batched(4));
        b.output("y", op(b, "relu", x));
        Graph graph = b.build();

        assertThat(FOLD.apply(graph)).isSameAs(graph);
    }
}
