package dev.kiln.engine.backend;

import dev.kiln.engine.exec.CompiledModel;
import dev.kiln.engine.exec.Executor;

/**
 * Where compiled graphs run. A backend loads a model's static data once ({@link LoadedModel}, shared by every
 * executor thread of the JVM) and creates per-thread executors. Chosen per model: {@code cpu} now; {@code cuda}
 * later (the GPU issue).
 */
public interface Backend {
    String name();

    /** Places the model's constants and parameters for this backend. The caller closes the result. */
    LoadedModel load(CompiledModel model);

    /** A model's static data on a backend, and the factory of its executors. */
    interface LoadedModel extends AutoCloseable {
        /** A new executor with buffers for {@code capacity} rows; the caller closes it. */
        Executor newExecutor(long capacity);

        /** Off-heap bytes of static data. */
        long staticBytes();

        @Override
        void close();
    }
}
