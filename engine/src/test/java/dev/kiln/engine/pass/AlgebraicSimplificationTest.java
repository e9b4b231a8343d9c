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

class AlgebraicSimplificationTest {
    private static final Pass SIMPLIFY = Passes.ALGEBRAIC_SIMPLIFICATION;

    private static Graph simplify(Graph g) {
        return Passes.DEAD_CODE_ELIMINATION.apply(SIMPLIFY.apply(g));
    }

    @Test
    void removesMultiplyByOneAndAddZero() {
        GraphBuilder b = new GraphBuilder();
        Value x = input(b, "x", Shape.batched(3));
        Value y = op(b, OpRegistry.MUL, x, scalar(b, 1));
        y = op(b, OpRegistry.ADD, constant(b, new long[] {3}, 0, 0, 0), y);
        y = op(b, OpRegistry.DIV, y, scalar(b, 1));
        b.output("y", op(b, "relu", op(b, OpRegistry.SUB, y, scalar(b, 0))));

        assertThat(GraphPrinter.print(simplify(b.build()))).isEqualTo("""
                graph(%x: float32[batch, 3]) {
                  %0: float32[batch, 3] = relu(%x)
                  return y=%0
                }
                """);
    }

    @Test
    void removesDoubleTransposeAndComposesOthers() {
        GraphBuilder b = new GraphBuilder();
        Value x = input(b, "x", Shape.batched(2, 3));
        Value back = op(b, OpRegistry.TRANSPOSE, Attributes.of("perm", new long[] {0, 2, 1}),
                op(b, OpRegistry.TRANSPOSE, Attributes.of("perm", new long[] {0, 2, 1}), x));
        Value composed = op(b, OpRegistry.TRANSPOSE, Attributes.of("perm", new long[] {1, 0, 2}),
                op(b, OpRegistry.TRANSPOSE, Attributes.of("perm", new long[] {0, 2, 1}), x));
        b.output("back", back);
        b.output("composed", composed);

        assertThat(GraphPrinter.print(simplify(b.build()))).isEqualTo("""
                graph(%x: float32[batch, 2, 3]) {
                  %0: float32[3, batch, 2] = transpose(%x) {perm=[2, 0, 1]}
                  return back=%x, composed=%0
                }
                """);
    }

    @Test
    void removesIdentityAndSameShapeReshape() {
        GraphBuilder b = new GraphBuilder();
        Value x = input(b, "x", Shape.batched(4));
        Value r = op(b, OpRegistry.RESHAPE, Attributes.of("shape", new long[] {0, 4}), op(b, OpRegistry.IDENTITY, x));
        b.output("y", op(b, OpRegistry.EXP, r));

        assertThat(GraphPrinter.print(simplify(b.build()))).isEqualTo("""
                graph(%x: float32[batch, 4]) {
                  %0: float32[batch, 4] = exp(%x)
                  return y=%0
                }
                """);
    }

    @Test
    void doesNotFireWhenBroadcastingChangesTheShape() {
        // x * ones([1, 4]) with x [batch, 1] is [batch, 4]: not x.
        GraphBuilder b = new GraphBuilder();
        Value x = input(b, "x", Shape.batched(1));
        b.output("y", op(b, OpRegistry.MUL, x, constant(b, new long[] {1, 4}, 1, 1, 1, 1)));
        Graph graph = b.build();

        assertThat(SIMPLIFY.apply(graph)).isSameAs(graph);
    }
}
