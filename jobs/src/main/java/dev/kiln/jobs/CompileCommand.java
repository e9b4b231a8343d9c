package dev.kiln.jobs;

import dev.kiln.engine.Kiln;
import dev.kiln.engine.exec.CompiledModel;
import dev.kiln.engine.exec.ValidationReport;
import dev.kiln.engine.exec.Validator;
import dev.kiln.engine.tensor.TensorData;
import dev.kiln.engine.zoo.ModelZoo;
import dev.kiln.format.store.ModelStore;
import dev.kiln.format.onnx.OnnxImporter;
import dev.kiln.engine.backend.cpu.CpuBackend;
import dev.kiln.engine.ir.Graph;
import dev.kiln.engine.pass.PassPipeline;
import java.nio.file.Path;
import dev.kiln.format.safetensors.Safetensors;

import java.io.PrintStream;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;

/** {@code bin/kiln compile}: a zoo model plus weights, compiled, validated and written as a .kiln file. */
final class CompileCommand implements KilnCli.Command {
    @Override
    public String name() {
        return "compile";
    }

    @Override
    public String summary() {
        return "compile a model (zoo:NAME + safetensors weights) to a .kiln file, validated against eager";
    }

    @Override
    public String usage() {
        return String.join("\n",
                "Usage: bin/kiln compile --model zoo:NAME [--weights FILE.safetensors] --out URI [--samples N] [--no-validate] [--overwrite]",
                "",
                "  --model     zoo:seed-mlp (a model written with Kiln's block API), or FILE.onnx (as torch.onnx.export writes it;",
                "              supported ONNX ops are listed when a model uses others)",
                "  --weights   PyTorch state_dict as safetensors, loaded by name (default: seeded random weights)",
                "  --out       where to write the .kiln file: a path, file://, hdfs://, s3a://... (written atomically)",
                "  --samples   random sample batches for the eager-vs-compiled validation (default 3)",
                "  --no-validate  skip the validation (the manifest then records none)",
                "  --overwrite replace an existing file",
                "",
                "Example:",
                "  bin/kiln compile --model zoo:seed-mlp --weights ../shared/models/mlp/weights.safetensors --out mlp.kiln",
                "  bin/kiln compile --model ../shared/models/mlp/model.onnx --out mlp-onnx.kiln");
    }

    @Override
    public int run(String[] argv, PrintStream out) {
        Args args = Args.parse(name(), argv, Set.of("model", "weights", "out", "samples"), Set.of("no-validate", "overwrite"));
        if (args.required("model").endsWith(".onnx")) {
            return compileOnnx(args, out);
        }
        ModelZoo.Entry entry = ModelZoo.get(args.required("model"));
        String target = args.required("out");
        if (args.has("weights")) {
            entry.block().loadParameters(Safetensors.read(Models.existingFile(args.get("weights", null))));
        }
        try (CompiledModel model = Kiln.compile(entry.block(), entry.signature())) {
            ValidationReport report = null;
            if (!args.flag("no-validate")) {
                report = Validator.validate(entry.block(), model, samples(model, args.getInt("samples", 3)));
                out.print(report);
                if (!report.passed()) {
                    out.println("Not writing a model whose compiled graph does not match eager.");
                    return 1;
                }
            }
            var written = ModelStore.withDefaults().save(model, entry.name(), "zoo:" + entry.name(), report, target, args.flag("overwrite"));
            out.printf("Wrote %s (%s; passes: %s)%n", written, model.signature(), String.join(", ", model.passes()));
            return 0;
        }
    }

    /**
     * An ONNX file: imported, optimized, validated against the unoptimized graph run by the reference kernels, and
     * written with its source recorded.
     */
    private int compileOnnx(Args args, PrintStream out) {
        Path onnx = Models.existingFile(args.required("model"));
        Graph imported = OnnxImporter.importModel(onnx);
        String name = onnx.getFileName().toString().replaceFirst("\\.onnx$", "");
        try (CompiledModel reference = new CompiledModel(imported, List.of(), CpuBackend.INSTANCE);
             CompiledModel model = Kiln.compile(imported, PassPipeline.standard(), CpuBackend.INSTANCE)) {
            ValidationReport report = null;
            if (!args.flag("no-validate")) {
                report = Validator.validate(reference, model, samples(model, args.getInt("samples", 3)));
                out.print(report.toString().replace("eager vs compiled", "unoptimized vs optimized"));
                if (!report.passed()) {
                    out.println("Not writing a model whose optimized graph does not match the imported one.");
                    return 1;
                }
            }
            var written = ModelStore.withDefaults().save(model, name, "onnx:" + onnx.toAbsolutePath(), report, args.required("out"), args.flag("overwrite"));
            out.printf("Wrote %s (%s; passes: %s)%n", written, model.signature(), String.join(", ", model.passes()));
            return 0;
        }
    }

    /** Random normal inputs at batch sizes 1, 7, 64, ... for validation. */
    static List<Map<String, TensorData>> samples(CompiledModel model, int count) {
        Random random = new Random(7);
        int[] batches = {1, 7, 64, 300};
        List<Map<String, TensorData>> samples = new java.util.ArrayList<>();
        for (int s = 0; s < count; s++) {
            int batch = batches[s % batches.length];
            Map<String, TensorData> sample = new java.util.LinkedHashMap<>();
            for (var spec : model.signature().inputs()) {
                long[] shape = spec.shape().resolve(batch);
                float[] values = new float[(int) TensorData.elementCount(shape)];
                for (int i = 0; i < values.length; i++) {
                    values[i] = (float) random.nextGaussian();
                }
                sample.put(spec.name(), TensorData.ofFloats(shape, values));
            }
            samples.add(sample);
        }
        return samples;
    }
}
