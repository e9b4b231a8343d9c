package dev.kiln.jobs;

import dev.kiln.engine.Kiln;
import dev.kiln.engine.exec.CompiledModel;
import dev.kiln.engine.exec.ValidationReport;
import dev.kiln.engine.exec.Validator;
import dev.kiln.engine.ir.Graph;
import dev.kiln.engine.tensor.Tensor;
import dev.kiln.engine.tensor.TensorData;
import dev.kiln.engine.zoo.ModelZoo;
import dev.kiln.format.kiln.KilnFormat;
import dev.kiln.format.store.ModelStore;
import dev.kiln.jobs.bench.SeedBenchmark;

import java.io.PrintStream;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Set;

/**
 * {@code bin/kiln demo}: the driver-side story on the seed MLP with embedded defaults: eager run, compile (graph
 * before and after the passes, memory plan), validation, export, and the 1000-call benchmark.
 */
final class DemoCommand implements KilnCli.Command {
    @Override
    public String name() {
        return "demo";
    }

    @Override
    public String summary() {
        return "the whole story on the seed MLP: eager, compile, validate, export, benchmark";
    }

    @Override
    public String usage() {
        return String.join("\n",
                "Usage: bin/kiln demo [--out DIR] [--rows N] [--calls N]",
                "",
                "  --out    where to write the demo's files (default kiln-demo)",
                "  --rows   rows of generated data to score with Spark (default 1000000)",
                "  --calls  calls per repetition of the batch-1 benchmark (default 1000)",
                "",
                "Example:",
                "  bin/kiln demo");
    }

    @Override
    public int run(String[] argv, PrintStream out) throws Exception {
        Args args = Args.parse(name(), argv, Set.of("out", "calls", "rows"), Set.of());
        Path outDir = Path.of(args.get("out", "kiln-demo")).toAbsolutePath();
        ModelZoo.Entry entry = ModelZoo.get("seed-mlp");
        entry.block().setSeed(2024);

        out.println("== 1. Eager: the seed MLP (" + entry.description() + "), op by op on ND4J");
        float[] x = new float[512];
        java.util.Random random = new java.util.Random(1);
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) random.nextGaussian();
        }
        Tensor y = entry.block().forward(Tensor.of(new long[] {1, 512}, x));
        out.println("   net(x) for one row x ~ N(0, 1): " + Arrays.toString(y.toFloatArray()));

        out.println();
        out.println("== 2. Compile: trace the same block code into a graph, then optimize it");
        Graph traced = Kiln.trace(entry.block(), entry.signature());
        out.println("   traced graph (" + traced.nodes().size() + " nodes):");
        out.print(indent(traced.toString()));
        try (CompiledModel model = Kiln.compile(entry.block(), entry.signature())) {
            out.println("   after passes " + String.join(" -> ", model.passes()) + " (" + model.graph().nodes().size() + " nodes):");
            out.print(indent(model.graph().toString()));
            out.println("   " + model.memoryPlan(1024));

            out.println();
            out.println("== 3. Validate: eager (ND4J kernels) vs compiled (Kiln kernels) on random batches of 1, 7 and 64 rows");
            ValidationReport report = Validator.validate(entry.block(), model, CompileCommand.samples(model, 3));
            out.print(indent(report.toString()));

            out.println();
            out.println("== 4. Export: graph + parameters in one portable file");
            Path file = Models.outputFile(outDir.resolve("mlp.kiln").toString());
            ModelStore store = ModelStore.withDefaults();
            store.save(model, entry.name(), report, file.toString(), true);
            KilnFormat.ModelFile reread = store.load(file.toString());
            try (CompiledModel loaded = reread.toCompiledModel()) {
                float[] fromFile = loaded.run(java.util.Map.of("x", TensorData.ofFloats(new long[] {1, 512}, x))).get("y").toFloatArray();
                out.println("   wrote " + file + " (content hash " + reread.contentHash().substring(0, 16) + "...); reloaded, it gives "
                        + Arrays.toString(fromFile));
            }
            if (!report.passed()) {
                out.println("Validation failed: not benchmarking a model that does not match eager.");
                return 1;
            }
        }

        out.println();
        out.println("== 5. Benchmark: " + args.getInt("calls", 1000) + " calls at batch 1, and rows/s at batch 1024, one thread ("
                + BenchCommand.environment() + ")");
        SeedBenchmark bench = new SeedBenchmark(entry.block(), entry.signature(), args.getInt("calls", 1000), 3, out);
        List<SeedBenchmark.Result> results = bench.run(List.of(1, 1024), List.of(1));
        out.println();
        int rows = args.getInt("rows", 1_000_000);
        out.printf("== 6. Spark: score %,d generated rows of array<float>[512] with KilnModel on local[2]%n", rows);
        SparkDemo.Summary summary = SparkDemo.run(outDir, outDir.resolve("mlp.kiln").toString(), rows, out);
        out.println();
        out.println("Done.");
        out.printf("  model        %s%n", outDir.resolve("mlp.kiln"));
        out.printf("  input rows   %s%n", summary.input());
        out.printf("  predictions  %s%n", summary.output());
        return results.isEmpty() ? 1 : 0;
    }

    private static String indent(String text) {
        StringBuilder sb = new StringBuilder();
        for (String line : text.split("\n")) {
            sb.append("     ").append(line).append('\n');
        }
        return sb.toString();
    }
}
