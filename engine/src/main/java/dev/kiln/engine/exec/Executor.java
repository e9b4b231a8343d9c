package dev.kiln.engine.exec;

import java.nio.FloatBuffer;

/**
 * Runs one compiled model on one thread over preallocated buffers. Not thread-safe: one executor per thread (the
 * model pools them). After warm-up, {@link #setInput}, {@link #run} and {@link #getOutput} allocate nothing: no heap
 * objects, no off-heap memory. Buffers are sized for a batch capacity and grow (the only allocation) when a larger
 * batch arrives. The caller closes it, which frees its off-heap arena.
 */
public interface Executor extends AutoCloseable {
    CompiledModel model();

    /** The largest batch the buffers hold now. */
    long capacity();

    /** Copies {@code batch} rows of input {@code index} from {@code source}, growing the buffers if needed. */
    void setInput(int index, float[] source, int sourceOffset, int batch);

    /** A borrowed direct view of the buffer holding input {@code index}, starting at {@link #inputOffset}. */
    FloatBuffer inputBuffer(int index);

    int inputOffset(int index);

    /**
     * Reads input {@code index} straight from {@code buffer} (direct, little-endian, borrowed; it must hold
     * {@link #capacity()} rows, and the caller keeps it alive) instead of the executor's own memory, until
     * {@link #unbindInputs()}: the zero-copy path for inputs that already sit off-heap (Arrow vectors). A backend may
     * rebuild its schedule for a new binding, once, at the next call that uses the buffers (the CPU executor does,
     * unless the buffer is the memory it was built for, as when a pooled executor's next task gets its batch at the
     * same address); batches after that allocate nothing.
     */
    void bindInput(int index, java.nio.ByteBuffer buffer);

    /**
     * As {@link #bindInput}, for batch rows that sit {@code rowStride} floats apart in {@code buffer}: row r's values
     * start at float r x rowStride, and whatever lies between rows is never read (a row of the caller's own format,
     * such as a Spark output row being built around its features). It must hold {@link #capacity()} rows. Returns
     * false, binding nothing, where this executor cannot read input {@code index} that way: bind packed rows then.
     * The CPU executor reads such rows in place where the input feeds dense layers, and makes a packed copy per batch
     * for any other reader. While an input is bound so, {@link #inputBuffer} is that buffer, its rows as far apart.
     */
    default boolean bindInputRows(int index, java.nio.ByteBuffer buffer, int rowStride) {
        return false;
    }

    /** Reads every input from the executor's own memory again. */
    void unbindInputs();

    /** Makes room for {@code batch} rows (keeping inputs already set). */
    void ensureCapacity(long batch);

    /** Computes all outputs for the first {@code batch} rows of the inputs. */
    void run(long batch);

    /** Copies output {@code index} of the last run into {@code target}; returns the number of floats copied. */
    int getOutput(int index, float[] target, int targetOffset);

    /** A borrowed direct view of the buffer holding output {@code index}, starting at {@link #outputOffset}. */
    FloatBuffer outputBuffer(int index);

    int outputOffset(int index);

    /** Floats in output {@code index} for the last run. */
    int outputElements(int index);

    /** Off-heap bytes this executor holds (its arena). */
    long arenaBytes();

    @Override
    void close();
}
