package dev.kiln.engine.pass;

import dev.kiln.engine.Kiln;
import dev.kiln.engine.ir.Graph;
import dev.kiln.engine.ir.GraphPrinter;
import dev.kiln.engine.ir.Node;
import dev.kiln.engine.ir.Signature;
import dev.kiln.engine.ir.Value;
import dev.kiln.engine.ops.OpRegistry;
import dev.kiln.engine.plan.MemoryPlan;
import dev.kiln.engine.plan.MemoryPlanner;
import dev.kiln.engine.tensor.Shape;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.LongStream;

import static org.assertj.core.api.Assertions.assertThat;

/** Properties that must hold for every graph: checked on the traced graphs of generated models. */
class PassPropertiesTest {
    static LongStream seeds() {
        return LongStream.range(0, 60);
    }

    private static Graph traced(long seed) {
        var model = dev.kiln.engine.exec.RandomModelsAccess.create(seed);
        return Kiln.trace(model.block(), Signature.builder().input("x", Shape.batched(model.inputWidth())).build());
    }

    @ParameterizedTest
    @MethodSource("seeds")
    void everyPassIsIdempotent(long seed) {
        Graph graph = traced(seed);
        for (Pass pass : Passes.all()) {
            Graph once = pass.apply(graph);
            Graph twice = pass.apply(once);
            assertThat(GraphPrinter.print(twice)).as("%s applied twice, seed %d", pass.name(), seed).isEqualTo(GraphPrinter.print(once));
        }
    }

    @ParameterizedTest
    @MethodSource("seeds")
    void deadCodeEliminationNeverDropsAnOutput(long seed) {
        Graph graph = new PassPipeline(Passes.standard(), true).run(traced(seed));
        assertThat(graph.outputNames()).containsExactly("output");
        assertThat(graph.outputs()).hasSize(1);
    }

    @ParameterizedTest
    @MethodSource("seeds")
    void noTwoValuesAliveTogetherShareBytes(long seed) {
        Graph graph = new PassPipeline(Passes.standard(), true).run(traced(seed));
        long batch = 1 + seed * 5;
        MemoryPlan plan = MemoryPlanner.plan(graph, batch);
        // Live ranges recomputed here independently: from definition to last read (outputs: to the end).
        List<Node> nodes = graph.nodes();
        Map<Value, int[]> live = new IdentityHashMap<>();
        for (Value in : graph.inputs()) {
            live.put(in, new int[] {-1, -1});
        }
        for (int i = 0; i < nodes.size(); i++) {
            Node n = nodes.get(i);
            for (Value in : n.inputs()) {
                if (live.containsKey(in)) {
                    live.get(in)[1] = i;
                }
            }
            if (n.op().equals(OpRegistry.CONSTANT) || n.op().equals(OpRegistry.PARAMETER)) {
                continue;
            }
            for (Value out : n.outputs()) {
                live.put(out, new int[] {i, i});
            }
        }
        for (Value out : graph.outputs()) {
            if (live.containsKey(out)) {
                live.get(out)[1] = nodes.size();
            }
        }
        List<Value> values = List.copyOf(live.keySet());
        for (int i = 0; i < values.size(); i++) {
            for (int j = i + 1; j < values.size(); j++) {
                Value a = values.get(i);
                Value b = values.get(j);
                if (!plan.offsets().containsKey(a) || !plan.offsets().containsKey(b) || plan.offset(a) == plan.offset(b) && aliases(graph, a, b)) {
                    continue;
                }
                int[] ra = live.get(a);
                int[] rb = live.get(b);
                boolean together = ra[0] <= rb[1] && rb[0] <= ra[1];
                long sa = a.type().shape().elementCount(batch);
                long sb = b.type().shape().elementCount(batch);
                boolean overlap = plan.offset(a) < plan.offset(b) + sb && plan.offset(b) < plan.offset(a) + sa && sa > 0 && sb > 0;
                assertThat(together && overlap).as("seed %d: %s and %s are alive together and share bytes", seed, a, b).isFalse();
            }
        }
        // Planning never needs more than one buffer per value (each padded to 64 bytes).
        assertThat(plan.peakBytes()).isLessThanOrEqualTo(plan.naiveBytes() + 64L * values.size());
    }

    /** Whether one value is a view (reshape/identity) of the other, which share storage by design. */
    private static boolean aliases(Graph graph, Value a, Value b) {
        return root(graph, a) == root(graph, b);
    }

    private static Value root(Graph graph, Value v) {
        Node producer = graph.producer(v);
        while (producer != null && OpRegistry.get(producer.op()).aliasesInput()) {
            v = producer.input(0);
            producer = graph.producer(v);
        }
        return v;
    }
}
