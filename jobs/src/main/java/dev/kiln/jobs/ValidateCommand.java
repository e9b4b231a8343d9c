package dev.kiln.jobs;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;
import dev.kiln.engine.exec.CompiledModel;
import dev.kiln.engine.exec.ValidationReport;
import dev.kiln.engine.exec.Validator;
import dev.kiln.engine.zoo.ModelZoo;
import dev.kiln.format.kiln.KilnFormat;
import dev.kiln.format.store.ModelStore;

import java.io.PrintStream;
import java.util.Set;

/**
 * {@code bin/kiln validate}: re-runs eager versus compiled on the driver for a stored model, rebuilding the eager model
 * from the source its manifest records and loading the file's own weights into it.
 */
final class ValidateCommand implements KilnCli.Command {
    @Override
    public String name() {
        return "validate";
    }

    @Override
    public String summary() {
        return "re-run eager vs compiled for a stored model (built from a zoo block or an ONNX file) and print the report";
    }

    @Override
    public String usage() {
        return String.join("\n",
                "Usage: bin/kiln validate --model URI [--samples N]",
                "",
                "  --model    a .kiln file whose manifest records its source (bin/kiln compile writes it)",
                "  --samples  random sample batches (default 3; batch sizes 1, 7, 64, 300, ...)",
                "",
                "Exit code 0 when every output is within tolerance, 1 otherwise.",
                "",
                "Example:",
                "  bin/kiln validate --model kiln-demo/mlp.kiln --samples 5");
    }

    @Override
    public int run(String[] argv, PrintStream out) {
        Args args = Args.parse(name(), argv, Set.of("model", "samples"), Set.of());
        String location = args.required("model");
        KilnFormat.ModelFile file = ModelStore.withDefaults().load(location);
        String source = file.source();
        if (source != null && source.startsWith("onnx:")) {
            java.nio.file.Path onnx = Models.existingFile(source.substring("onnx:".length()));
            try (CompiledModel reference = new CompiledModel(dev.kiln.format.onnx.OnnxImporter.importModel(onnx), java.util.List.of(),
                    dev.kiln.engine.backend.cpu.CpuBackend.INSTANCE); CompiledModel model = file.toCompiledModel()) {
                ValidationReport report = Validator.validate(reference, model, CompileCommand.samples(model, args.getInt("samples", 3)));
                out.printf("Model %s (%s, content hash %s)%n", file.name(), source, file.contentHash());
                out.print(report.toString().replace("eager vs compiled", "re-imported unoptimized vs stored"));
                return report.passed() ? 0 : 1;
            }
        }
        if (source == null || !source.startsWith("zoo:")) {
            throw KilnException.of(ErrorCode.INVALID_ARGUMENT,
                    "Model %s records no source to rebuild (manifest 'source' is %s); validate rebuilds zoo models and re-imports ONNX files",
                    location, source == null ? "missing" : "'" + source + "'");
        }
        ModelZoo.Entry entry = ModelZoo.get(source);
        entry.block().loadParameters(file.graph().parameters());
        try (CompiledModel model = file.toCompiledModel()) {
            ValidationReport report = Validator.validate(entry.block(), model, CompileCommand.samples(model, args.getInt("samples", 3)));
            out.printf("Model %s (%s, content hash %s)%n", file.name(), source, file.contentHash());
            out.print(report);
            return report.passed() ? 0 : 1;
        }
    }
}
