package dev.kiln.engine.pass;

import dev.kiln.engine.ir.Graph;

import java.util.ArrayList;
import java.util.List;

import static java.util.Objects.requireNonNull;

/** Runs passes in order; with verification on (tests, debugging), checks the graph after each pass. */
public final class PassPipeline {
    private final List<Pass> passes;
    private final boolean verify;
    private final List<String> applied = new ArrayList<>();

    public PassPipeline(List<Pass> passes, boolean verify) {
        this.passes = List.copyOf(requireNonNull(passes, "passes is null"));
        this.verify = verify;
    }

    public static PassPipeline standard() {
        return new PassPipeline(Passes.standard(), Boolean.getBoolean("kiln.verifyPasses"));
    }

    public Graph run(Graph graph) {
        Graph current = verify ? GraphVerifier.verify(graph, "input graph") : graph;
        applied.clear();
        for (Pass pass : passes) {
            current = pass.apply(current);
            applied.add(pass.name());
            if (verify) {
                GraphVerifier.verify(current, "graph after " + pass.name());
            }
        }
        return current;
    }

    /** The names of the passes the last run applied, in order (recorded in model manifests). */
    public List<String> applied() {
        return List.copyOf(applied);
    }

    public List<Pass> passes() {
        return passes;
    }
}
