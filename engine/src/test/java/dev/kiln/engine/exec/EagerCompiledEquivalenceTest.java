package dev.kiln.engine.exec;

import dev.kiln.engine.Kiln;
import dev.kiln.engine.ir.Signature;
import dev.kiln.engine.pass.Pass;
import dev.kiln.engine.pass.PassPipeline;
import dev.kiln.engine.pass.Passes;
import dev.kiln.engine.tensor.Shape;
import dev.kiln.engine.tensor.Tensor;
import dev.kiln.engine.tensor.TensorData;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.LongStream;

import static dev.kiln.engine.TestGraphs.assertAllClose;
import static dev.kiln.engine.TestGraphs.random;

/**
 * Eager (ND4J's kernels) versus compiled (Kiln's kernels) on 200 generated models, at a random batch size in
 * 1..300, compiled with each pass alone and with the whole standard pipeline (graphs verified after every pass).
 * Two independent implementations agreeing on every model is the evidence that tracing and passes keep meaning.
 */
class EagerCompiledEquivalenceTest {
    static LongStream seeds() {
        return LongStream.range(0, 200);
    }

    static List<PassPipeline> pipelines() {
        List<PassPipeline> out = new ArrayList<>();
        out.add(new PassPipeline(List.of(), true));
        for (Pass pass : Passes.all()) {
            out.add(new PassPipeline(List.of(pass), true));
        }
        out.add(new PassPipeline(Passes.standard(), true));
        return out;
    }

    @ParameterizedTest
    @MethodSource("seeds")
    void compiledMatchesEager(long seed) {
        RandomModels.Model model = RandomModels.create(seed);
        int batch = 1 + new Random(seed * 31 + 7).nextInt(300);
        TensorData x = random(new long[] {batch, model.inputWidth()}, seed);
        float[] eager = model.block().forward(Tensor.of(x)).toFloatArray();
        Signature signature = Signature.builder().input("x", Shape.batched(model.inputWidth())).output("y").build();
        for (PassPipeline pipeline : pipelines()) {
            try (CompiledModel compiled = Kiln.compile(model.block(), signature, pipeline)) {
                float[] actual = compiled.run(Map.of("x", x)).get("y").toFloatArray();
                assertAllClose(actual, eager, 2e-4, 2e-5,
                        "seed " + seed + " batch " + batch + " passes " + pipeline.applied() + " model " + model.description());
            }
        }
    }
}
