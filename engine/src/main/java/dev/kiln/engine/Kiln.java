package dev.kiln.engine;

import dev.kiln.engine.backend.Backend;
import dev.kiln.engine.backend.cpu.CpuBackend;
import dev.kiln.engine.exec.CompiledModel;
import dev.kiln.engine.ir.Graph;
import dev.kiln.engine.ir.Signature;
import dev.kiln.engine.nn.Block;
import dev.kiln.engine.pass.PassPipeline;
import dev.kiln.engine.trace.Tracer;

/** Entry points: compile a block (trace, optimize, bind to a backend) or an already built graph. */
public final class Kiln {
    private Kiln() {
    }

    /** Traces {@code block} for {@code signature}, runs the standard passes and binds the result to the CPU backend. */
    public static CompiledModel compile(Block block, Signature signature) {
        return compile(Tracer.trace(block, signature), PassPipeline.standard(), CpuBackend.INSTANCE);
    }

    /** Traces {@code block} and compiles it with the given pass pipeline (for tests and experiments). */
    public static CompiledModel compile(Block block, Signature signature, PassPipeline pipeline) {
        return compile(Tracer.trace(block, signature), pipeline, CpuBackend.INSTANCE);
    }

    /** Optimizes {@code graph} with {@code pipeline} and binds it to {@code backend}. */
    public static CompiledModel compile(Graph graph, PassPipeline pipeline, Backend backend) {
        Graph optimized = pipeline.run(graph);
        return new CompiledModel(optimized, pipeline.applied(), backend);
    }

    /** Traces {@code block} into its unoptimized graph. */
    public static Graph trace(Block block, Signature signature) {
        return Tracer.trace(block, signature);
    }
}
