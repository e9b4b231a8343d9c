package dev.kiln.engine.plan;

import dev.kiln.engine.ir.Graph;
import dev.kiln.engine.ir.GraphBuilder;
import dev.kiln.engine.ir.Node;
import dev.kiln.engine.ir.Value;
import dev.kiln.engine.ops.OpRegistry;
import dev.kiln.engine.tensor.Shape;
import org.junit.jupiter.api.Test;

import java.util.Map;

import static dev.kiln.engine.TestGraphs.input;
import static dev.kiln.engine.TestGraphs.op;
import static org.assertj.core.api.Assertions.assertThat;

class MemoryPlannerTest {
    private static boolean share(MemoryPlan plan, Value a, Value b, long batch) {
        long sa = a.type().shape().elementCount(batch);
        long sb = b.type().shape().elementCount(batch);
        return plan.offset(a) < plan.offset(b) + sb && plan.offset(b) < plan.offset(a) + sa;
    }

    /** x -> a -> b -> c -> d (exp each), all the same size: b may reuse x's bytes (x is dead after a), unless x is kept alive. */
    @Test
    void aValueKeptAliveUntilANodeIsNotReusedBeforeIt() {
        GraphBuilder g = new GraphBuilder();
        Value x = input(g, "x", Shape.batched(64));
        Value a = op(g, OpRegistry.EXP, x);
        Value b = op(g, OpRegistry.EXP, a);
        Value c = op(g, OpRegistry.EXP, b);
        Value d = op(g, OpRegistry.EXP, c);
        g.output("d", d);
        Graph graph = g.build();
        long batch = 10;

        MemoryPlan plain = MemoryPlanner.plan(graph, batch);
        assertThat(share(plain, x, b, batch)).as("without the hint the planner reuses x's bytes for b").isTrue();

        Node producesC = graph.producer(c);
        MemoryPlan kept = MemoryPlanner.plan(graph, batch, Map.of(x, producesC));
        assertThat(share(kept, x, a, batch) || share(kept, x, b, batch) || share(kept, x, c, batch))
                .as("x alive until c is written: no value up to c shares its bytes").isFalse();
        // After that node, x's bytes are free again.
        assertThat(share(kept, x, d, batch)).isTrue();
    }
}
