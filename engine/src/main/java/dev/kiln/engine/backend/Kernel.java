package dev.kiln.engine.backend;

/**
 * One step of a compiled schedule, bound at creation to its input and output buffers. {@link #run} must not allocate:
 * it computes concrete sizes from the batch with primitive arithmetic and loops over preassigned memory.
 */
@FunctionalInterface
public interface Kernel {
    void run(long batch);

    Kernel NO_OP = batch -> { };
}
