package dev.kiln.spark;

import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.catalyst.expressions.UnsafeRow;
import org.apache.spark.unsafe.Platform;

/**
 * Keeps the input rows of one batch alive until their predictions are joined to them. Spark reuses the row object
 * an iterator returns, so each row must be copied; {@code UnsafeRow.copy()} allocates a fresh array per row (2 KB for
 * 512 floats, a gigabyte of garbage per 500k rows), while this copies the bytes of every {@link UnsafeRow} into one
 * arena reused from batch to batch and points a reused row object at them. Other rows are copied the usual way.
 * <p>
 * The rows handed out stay valid until {@link #clear()}: the scorer clears only when it reads the next batch, after
 * the consumer has taken every row of this one (Spark's contract: a consumer that keeps a row copies it).
 */
final class HeldRows {
    private final UnsafeRow[] views;
    private byte[] arena = new byte[1 << 16];
    private int used;

    HeldRows(int capacity) {
        this.views = new UnsafeRow[capacity];
    }

    /** Starts a new batch: the rows held so far may be overwritten. */
    void clear() {
        used = 0;
    }

    /** A copy of {@code row} that stays valid until the next {@link #clear()}; {@code index} is its place in the batch. */
    InternalRow hold(InternalRow row, int index) {
        if (!(row instanceof UnsafeRow unsafe)) {
            return row.copy();
        }
        int size = unsafe.getSizeInBytes();
        if (used + size > arena.length) {
            // Rows already held keep the old array alive through their views; new rows go to a bigger one.
            arena = new byte[Math.max(arena.length * 2, used + size)];
            used = 0;
        }
        Platform.copyMemory(unsafe.getBaseObject(), unsafe.getBaseOffset(), arena, Platform.BYTE_ARRAY_OFFSET + used, size);
        UnsafeRow view = views[index];
        if (view == null || view.numFields() != unsafe.numFields()) {
            view = new UnsafeRow(unsafe.numFields());
            views[index] = view;
        }
        view.pointTo(arena, Platform.BYTE_ARRAY_OFFSET + used, size);
        // UnsafeRow sizes are multiples of 8 bytes, so the next row stays word-aligned.
        used += size;
        return view;
    }
}
