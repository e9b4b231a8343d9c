package dev.kiln.engine.exec;

/** Gives tests in other packages the generated models. */
public final class RandomModelsAccess {
    private RandomModelsAccess() {
    }

    public record Model(dev.kiln.engine.nn.Block block, long inputWidth) { }

    public static Model create(long seed) {
        RandomModels.Model m = RandomModels.create(seed);
        return new Model(m.block(), m.inputWidth());
    }
}
