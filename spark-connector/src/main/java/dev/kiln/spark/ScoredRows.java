package dev.kiln.spark;

import org.apache.spark.sql.catalyst.InternalRow;

/**
 * A batch's output rows, as {@link PartitionScorer} builds them: each input row joined with its predictions (and the
 * error column, when there is one). Two forms: {@link OutputRows}, Spark's {@code UnsafeRow} bytes written directly
 * (the internal-row path), and {@link GenericRows}, plain values that depend on no row layout (the public-API path).
 */
interface ScoredRows {
    /** Starts a new batch: the rows built so far may be overwritten. */
    void clear();

    /** Stores input {@code row} (valid only until the caller's next input row) as output row {@code index}. */
    void add(InternalRow row, int index);

    /** As {@link #add}, but the form may leave out columns the scorer copied verbatim into its batch. */
    void addDeferred(InternalRow row, int index);

    /** Whether row {@code index} left columns out (then {@link #emit} or {@link #materialize}, not {@link #row}). */
    boolean isDeferred(int index);

    /** Output row {@code index}, its left-out columns read from {@code sources}; valid until the next call. */
    InternalRow emit(int index, long[] sources);

    /** As {@link #emit}, a row of its own to keep. */
    InternalRow materialize(int index, long[] sources);

    /** Array prediction {@code column} of row {@code index}. */
    void putFloats(int index, int column, float[] values);

    /** Scalar prediction {@code column} of row {@code index}. */
    void putFloat(int index, int column, float value);

    /** Integer (argmax) prediction {@code column} of row {@code index}. */
    void putInt(int index, int column, int value);

    /** Output row {@code index}, as built by the last {@link #add}. */
    InternalRow row(int index);

    /** How many of an output row's fields are the input's (its first ones). */
    int inputFields();
}
