package dev.kiln.engine.pass;

import dev.kiln.engine.ir.Attributes;
import dev.kiln.engine.ir.Graph;
import dev.kiln.engine.ir.GraphBuilder;
import dev.kiln.engine.ir.GraphPrinter;
import dev.kiln.engine.ir.Value;
import dev.kiln.engine.ops.OpRegistry;
import dev.kiln.engine.tensor.Shape;
import org.junit.jupiter.api.Test;

import static dev.kiln.engine.TestGraphs.input;
import static dev.kiln.engine.TestGraphs.op;
import static dev.kiln.engine.TestGraphs.scalar;
import static org.assertj.core.api.Assertions.assertThat;

class CommonSubexpressionEliminationTest {
    private static final Pass CSE = Passes.COMMON_SUBEXPRESSION_ELIMINATION;

    @Test
    void mergesIdenticalComputationsAndEqualConstants() {
        GraphBuilder b = new GraphBuilder();
        Value x = input(b, "x", Shape.batched(3));
        Value a = op(b, OpRegistry.MUL, op(b, OpRegistry.EXP, x), scalar(b, 2));
        Value c = op(b, OpRegistry.MUL, op(b, OpRegistry.EXP, x), scalar(b, 2));
        b.output("y", op(b, OpRegistry.ADD, a, c));

        Graph after = Passes.DEAD_CODE_ELIMINATION.apply(CSE.apply(b.build()));

        assertThat(GraphPrinter.print(after)).isEqualTo("""
                graph(%x: float32[batch, 3]) {
                  %0: float32[batch, 3] = exp(%x)
                  %1: float32[] = constant() {value=float32[] [2.0]}
                  %2: float32[batch, 3] = mul(%0, %1)
                  %3: float32[batch, 3] = add(%2, %2)
                  return y=%3
                }
                """);
    }

    @Test
    void keepsNodesThatDifferInAttributes() {
        GraphBuilder b = new GraphBuilder();
        Value x = input(b, "x", Shape.batched(3, 4));
        Value s0 = op(b, OpRegistry.SOFTMAX, Attributes.of("axis", 1), x);
        Value s1 = op(b, OpRegistry.SOFTMAX, Attributes.of("axis", 2), x);
        b.output("y", op(b, OpRegistry.ADD, s0, s1));
        Graph graph = b.build();

        assertThat(CSE.apply(graph)).isSameAs(graph);
    }
}
