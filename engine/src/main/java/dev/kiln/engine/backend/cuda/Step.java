package dev.kiln.engine.backend.cuda;

/** One step of a lowered graph on the GPU, bound to its device addresses; {@link #run} allocates nothing. */
interface Step {
    void run(long batch, long stream);

    /** The graph node this step computes, for error messages. */
    String node();
}
