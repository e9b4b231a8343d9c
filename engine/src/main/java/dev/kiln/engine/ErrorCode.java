package dev.kiln.engine;

/** What kind of failure a {@link KilnException} reports; stable, so callers and tests can branch on it. */
public enum ErrorCode {
    /** A tensor's shape or dtype does not fit what an op, block or signature expects. */
    SHAPE_MISMATCH,
    /** A parameter is missing, unexpected, or has the wrong shape when weights are loaded. */
    PARAMETER_MISMATCH,
    /** Model code did something that cannot be traced (reading a symbolic value, branching on one). */
    TRACE_ERROR,
    /** An op, attribute or dtype the engine or a backend does not implement. */
    UNSUPPORTED_OP,
    /** A graph breaks an IR invariant (found by the verifier). */
    INVALID_GRAPH,
    /** A model file is damaged or inconsistent. */
    CORRUPT_MODEL,
    /** A model file was written by a newer, incompatible format version. */
    UNSUPPORTED_VERSION,
    /** An input row or tensor given at run time is wrong. */
    BAD_INPUT,
    /** A requested backend or device cannot run here. */
    BACKEND_UNAVAILABLE,
    /** A device ran out of memory for a batch; a smaller batch may fit (see {@code HalvingRunner}). */
    DEVICE_OUT_OF_MEMORY,
    /** An argument to a Kiln API is invalid. */
    INVALID_ARGUMENT,
    /** Reading or writing a file failed. */
    IO_ERROR
}
