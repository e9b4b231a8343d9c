package dev.kiln.jobs;

import dev.kiln.engine.backend.cpu.CpuBackend;
import dev.kiln.engine.zoo.ModelZoo;
import dev.kiln.jobs.bench.SeedBenchmark;
import dev.kiln.jobs.bench.SparkBenchmark;

import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;

/** {@code bin/kiln bench}: the seed's 1000-call benchmark, eager versus compiled. */
final class BenchCommand implements KilnCli.Command {
    @Override
    public String name() {
        return "bench";
    }

    @Override
    public String summary() {
        return "the seed benchmark: eager vs compiled, us/call at batch 1 and rows/s at larger batches";
    }

    @Override
    public String usage() {
        return String.join("\n",
                "Usage: bin/kiln bench [--calls 1000] [--rows 262144] [--batch 1,1024] [--threads 1] [--reps 5] [--compiled-only] [--profile] [--json FILE] [--chart FILE.png]",
                "",
                "  --calls    calls per repetition at batch 1",
                "  --rows     rows per repetition at larger batches (at least 5 calls)",
                "  --batch    batch sizes, comma-separated",
                "  --threads  worker counts, comma-separated; each worker runs its own executor single-threaded",
                "  --reps     interleaved repetitions per mode; medians and min-max are reported",
                "  --compiled-only  skip the eager runs",
                "  --profile  also time every compiled kernel and print where the time went (adds two clock reads per kernel);",
                "             with --peers, also ONNX Runtime's own per-node times (its profiler, in a separate untimed session)",
                "  --model    zoo:seed-mlp (default), zoo:small-cnn or zoo:tiny-encoder; with --peers an ONNX file",
                "  --peers    instead: Kiln (eager; compiled with the input copied in, and bound zero-copy) vs ONNX Runtime on an ONNX file (default ../shared/models/mlp/model.onnx) and the sgemm ceilings (OpenBLAS, oneDNN);",
                "             eager runs the reference model's zoo block with the weights.safetensors beside the file;",
                "             --threads 1,2 runs that many workers at once (own executor / ORT tensors each)",
                "  --spark    instead: Spark end to end on local[2] (--rows, default 1000000; --reps, default 3; --batch: the transform's batch sizes,",
                "             interleaved; default KilnModel's own; --input FILE.parquet: score that table's 'features' instead",
                "             of generated cached rows, e.g. the rows bin/kiln demo writes; --partitions N: the generated rows' partitions,",
                "             default 2, one per core; untimed repetitions first, 3 to 15, until the JIT compilers settle)",
                "  --jmh      instead: the JMH suites, the kernels (KernelBenchmarks) and the Spark connector's per-row path",
                "             (ScoringBenchmarks); --only NAME picks by class or method name, e.g. --only seedMlp, --only Scoring;",
                "             --jmh-opts \"...\" passes JMH options, e.g. --jmh-opts \"-p rows=131072 -f 2\"",
                "  --json     also write {\"results\":[{\"mode\",\"batch\",\"threads\",\"us_per_call\",\"rows_per_s\",...}]}",
                "  --chart    also draw the results as a PNG (rows/s per mode, log scale)",
                "",
                "Example:",
                "  bin/kiln bench --batch 1,1024 --threads 1,2 --json bench.json");
    }

    @Override
    public int run(String[] argv, PrintStream out) throws Exception {
        Args args = Args.parse(name(), argv, Set.of("calls", "rows", "batch", "threads", "reps", "json", "chart", "model", "only", "input", "partitions", "jmh-opts"), Set.of("compiled-only", "spark", "peers", "profile", "jmh"));
        if (args.flag("jmh")) {
            String pattern = args.get("only", "");
            List<String> jmh = new java.util.ArrayList<>(List.of("-rf", "json", "-rff", "jmh-result.json"));
            // A regex JMH finds in each benchmark's full name: --only picks by class or method name.
            jmh.add(0, dev.kiln.jobs.bench.jmh.KernelBenchmarks.class.getPackageName().replace(".", "\\.") + "\\..*" + pattern);
            String extra = args.get("jmh-opts", "").trim();
            if (!extra.isEmpty()) {
                jmh.addAll(List.of(extra.split("\\s+")));
            }
            org.openjdk.jmh.Main.main(jmh.toArray(new String[0]));
            return 0;
        }
        if (args.flag("profile")) {
            dev.kiln.engine.backend.cpu.KernelProfile.enable();
        }
        if (args.flag("peers")) {
            Path onnx = Path.of(args.get("model", "../shared/models/mlp/model.onnx"));
            out.printf("Kiln vs ONNX Runtime %s on %s, workers %s (one thread each), %s%n", ai.onnxruntime.OrtEnvironment.getEnvironment().getVersion(),
                    onnx, args.get("threads", "1"), environment());
            List<SeedBenchmark.Result> results = dev.kiln.jobs.bench.PeerBenchmark.run(Models.existingFile(onnx.toString()),
                    args.getIntList("batch", "1,1024"), args.getIntList("threads", "1"), args.getInt("calls", 1000), args.getInt("rows", 262_144), args.getInt("reps", 5), !args.flag("compiled-only"), out);
            writeOutputs(args, results, out, onnx.getFileName() + " (" + onnx.getParent().getFileName() + "): Kiln vs ONNX Runtime and sgemm ceilings (median rows/s)", false);
            printProfile(args, out);
            if (args.flag("profile")) {
                for (int batch : args.getIntList("batch", "1,1024")) {
                    dev.kiln.jobs.bench.PeerBenchmark.printOrtProfile(onnx, batch, batch == 1 ? args.getInt("calls", 1000) : Math.max(5, args.getInt("rows", 262_144) / batch), out);
                }
            }
            return 0;
        }
        if (args.flag("spark")) {
            // Without --batch: KilnModel's own batch size (0 there).
            SparkBenchmark.run(args.getInt("rows", 1_000_000), args.getInt("reps", 3), args.has("batch") ? args.getIntList("batch", null) : List.of(0),
                    args.has("input") ? args.get("input", null) : null, args.getInt("partitions", 2), out);
            return 0;
        }
        ModelZoo.Entry entry = ModelZoo.get(args.get("model", "zoo:seed-mlp"));
        entry.block().setSeed(7);
        out.printf("%s (%s), %s%n", entry.name(), entry.description(), environment());
        SeedBenchmark bench = new SeedBenchmark(entry.block(), entry.signature(), args.getInt("calls", 1000), args.getInt("rows", 262_144),
                args.getInt("reps", 5), out,
                !args.flag("compiled-only"));
        List<SeedBenchmark.Result> results = bench.run(args.getIntList("batch", "1,1024"), args.getIntList("threads", "1"));
        writeOutputs(args, results, out, entry.name() + ": eager vs compiled (median rows/s)", true);
        printProfile(args, out);
        return 0;
    }

    private static void printProfile(Args args, PrintStream out) {
        if (args.flag("profile")) {
            out.println("Compiled kernels, all runs together:");
            out.print(dev.kiln.engine.backend.cpu.KernelProfile.report());
        }
    }

    private static void writeOutputs(Args args, List<SeedBenchmark.Result> results, PrintStream out, String title, boolean logScale) throws java.io.IOException {
        if (args.has("chart")) {
            Path png = Models.outputFile(args.get("chart", null));
            dev.kiln.jobs.bench.BenchChart.write(results, png, title, logScale);
            out.printf("Wrote %s%n", png);
        }
        if (args.has("json")) {
            Path json = Models.outputFile(args.get("json", null));
            Files.writeString(json, SeedBenchmark.toJson(results), StandardCharsets.UTF_8);
            out.printf("Wrote %s%n", json);
        }
    }

    static String environment() {
        return String.format("%d cores, dense layers on %s, OPENBLAS_CORETYPE=%s, OMP_WAIT_POLICY=%s, OMP_NUM_THREADS=%s, BLAS threads per worker %d",
                Runtime.getRuntime().availableProcessors(), CpuBackend.gemmLibrary(), System.getenv("OPENBLAS_CORETYPE"), System.getenv("OMP_WAIT_POLICY"),
                System.getenv("OMP_NUM_THREADS"), CpuBackend.blasThreads());
    }
}
