package dev.kiln.engine.zoo;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;
import dev.kiln.engine.ir.Signature;
import dev.kiln.engine.nn.ActivationBlock;
import dev.kiln.engine.nn.Block;
import dev.kiln.engine.nn.Dense;
import dev.kiln.engine.nn.Sequential;
import dev.kiln.engine.ops.Activation;
import dev.kiln.engine.tensor.Shape;

import java.util.List;

/** Models Kiln knows by name ({@code zoo:NAME} on the command line), with their signatures. */
public final class ModelZoo {
    /** A named model: its block and the signature to compile it for. */
    public record Entry(String name, String description, Block block, Signature signature) { }

    private ModelZoo() {
    }

    public static List<String> names() {
        return List.of("seed-mlp");
    }

    public static Entry get(String name) {
        String n = name.startsWith("zoo:") ? name.substring(4) : name;
        if (n.equals("seed-mlp")) {
            return new Entry("seed-mlp", "the seed's MLP: 512 -> Dense(256, relu) -> Dense(128, relu) -> Dense(2)",
                    seedMlp(), Signature.builder().input("x", Shape.batched(512)).output("y").build());
        }
        throw KilnException.of(ErrorCode.INVALID_ARGUMENT, "Unknown zoo model '%s'; known: %s", name, names());
    }

    /**
     * The seed MLP, written as PyTorch's {@code nn.Sequential(Linear(512, 256), ReLU(), Linear(256, 128), ReLU(),
     * Linear(128, 2))} so that its parameters are named {@code 0.*, 2.*, 4.*} like that model's state_dict.
     */
    public static Sequential seedMlp() {
        return new Sequential().add(
                new Dense(256, Activation.NONE, true, 512), ActivationBlock.relu(),
                new Dense(128, Activation.NONE, true, 256), ActivationBlock.relu(),
                new Dense(2, Activation.NONE, true, 128));
    }
}
