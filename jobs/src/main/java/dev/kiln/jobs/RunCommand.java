package dev.kiln.jobs;

import dev.kiln.engine.exec.CompiledModel;
import dev.kiln.engine.tensor.TensorData;
import dev.kiln.format.kiln.KilnFormat;
import dev.kiln.format.safetensors.Safetensors;
import dev.kiln.format.store.ModelStore;

import java.io.PrintStream;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;
import java.util.Set;

/** {@code bin/kiln run}: a .kiln model on the tensors of a safetensors file, outputs written as safetensors. */
final class RunCommand implements KilnCli.Command {
    @Override
    public String name() {
        return "run";
    }

    @Override
    public String summary() {
        return "run a .kiln model on inputs from a safetensors file, write outputs as safetensors";
    }

    @Override
    public String usage() {
        return String.join("\n",
                "Usage: bin/kiln run --model URI --input IN.safetensors --output OUT.safetensors",
                "",
                "  Inputs are matched to the model's inputs by name; outputs are written under the model's output names.",
                "",
                "Example:",
                "  bin/kiln run --model mlp.kiln --input ../shared/models/mlp/inputs.safetensors --output y.safetensors");
    }

    @Override
    public int run(String[] argv, PrintStream out) {
        Args args = Args.parse(name(), argv, Set.of("model", "input", "output"), Set.of());
        String modelLocation = args.required("model");
        String input = args.required("input");
        String output = args.required("output");
        KilnFormat.ModelFile file = ModelStore.withDefaults().load(modelLocation);
        Path inputPath = Models.existingFile(input);
        Path outputPath = Models.outputFile(output);
        try (CompiledModel model = file.toCompiledModel()) {
            Map<String, TensorData> outputs = model.run(Safetensors.read(inputPath));
            Safetensors.write(outputs, outputPath);
            for (Map.Entry<String, TensorData> e : outputs.entrySet()) {
                out.printf("%s: %s %s%n", e.getKey(), e.getValue().dtype(), Arrays.toString(e.getValue().shape()));
            }
            out.printf("Wrote %s%n", outputPath);
        }
        return 0;
    }
}
