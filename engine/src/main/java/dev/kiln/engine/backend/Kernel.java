package dev.kiln.engine.backend;

/**
 * One step of a compiled schedule, bound at creation to its input and output buffers. {@link #run} must not allocate:
 * it computes concrete sizes from the batch with primitive arithmetic and loops over preassigned memory. A kernel that
 * holds native objects of a library (oneDNN's primitives) frees them in {@link #close}; its executor calls it once,
 * when the schedule is rebuilt or the executor closes.
 */
@FunctionalInterface
public interface Kernel extends AutoCloseable {
    void run(long batch);

    /** Frees what the kernel owns beyond its slots (which it only borrows). Idempotent; no exceptions. */
    @Override
    default void close() {
    }

    Kernel NO_OP = batch -> { };
}
