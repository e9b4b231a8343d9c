package dev.kiln.spark;

import org.apache.spark.sql.catalyst.expressions.UnsafeRow;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.unsafe.Platform;

import java.util.List;

/**
 * Builds the output rows of one batch as {@link UnsafeRow}s, copying each input row's bytes once. An output row is
 * its input row widened by the prediction columns (and the error column, null here): the null bitmap and fixed-width
 * slots are copied, the offsets of variable-length input fields are moved past the new slots, the input's
 * variable-length bytes follow unchanged, and each array prediction gets its space reserved at the end with its
 * header written, so {@link #putFloats} later only writes the values. The same layout Spark's {@code UnsafeRowWriter}
 * produces (tested against {@code UnsafeProjection}), so no projection is needed downstream.
 * <p>
 * Every row lives in one arena reused from batch to batch ({@code UnsafeRow.copy()} per row would allocate 2 KB per
 * 512-float row, a gigabyte per 500k rows). The rows handed out stay valid until {@link #clear()}: the scorer clears
 * only when it reads the next batch, after the consumer has taken every row of this one (Spark's contract: a
 * consumer that keeps a row copies it).
 */
final class OutputRows {
    private final int inputFields;
    private final int outputFields;
    private final int inputHeader;
    private final int outputHeader;
    /** Ordinals of the input's variable-length fields, whose offsets move. */
    private final int[] variableLength;
    /** Per prediction column: values per row, or 0 for a fixed-width (scalar) column. */
    private final int[] arrayWidth;
    /** Per prediction column: offset of its array in the reserved tail. */
    private final int[] tailOffset;
    private final int tailBytes;
    private final boolean errorColumn;
    private final UnsafeRow[] views;
    /** Per row of the batch: byte offset (from the row's base) of its reserved tail. */
    private final int[] tails;
    private byte[] arena = new byte[1 << 16];
    private int used;

    /**
     * @param input       the input rows' schema
     * @param predictions values per row of each prediction column, 0 for a scalar (fixed-width) column
     * @param errorColumn whether a (string) error column follows the predictions
     */
    OutputRows(StructType input, List<Integer> predictions, boolean errorColumn, int capacity) {
        this.inputFields = input.size();
        this.outputFields = inputFields + predictions.size() + (errorColumn ? 1 : 0);
        this.inputHeader = UnsafeRow.calculateBitSetWidthInBytes(inputFields) + 8 * inputFields;
        this.outputHeader = UnsafeRow.calculateBitSetWidthInBytes(outputFields) + 8 * outputFields;
        this.variableLength = java.util.stream.IntStream.range(0, inputFields)
                .filter(i -> !UnsafeRow.isFixedLength(input.fields()[i].dataType())).toArray();
        this.arrayWidth = predictions.stream().mapToInt(Integer::intValue).toArray();
        this.tailOffset = new int[arrayWidth.length];
        int tail = 0;
        for (int k = 0; k < arrayWidth.length; k++) {
            tailOffset[k] = tail;
            tail += arrayWidth[k] == 0 ? 0 : arrayBytes(arrayWidth[k]);
        }
        this.tailBytes = tail;
        this.errorColumn = errorColumn;
        this.views = new UnsafeRow[capacity];
        this.tails = new int[capacity];
    }

    /** Bytes of an {@code UnsafeArrayData} of {@code width} floats: count, null bitmap, values padded to 8 bytes. */
    static int arrayBytes(int width) {
        return 8 + ((width + 63) / 64) * 8 + ((4 * width + 7) & ~7);
    }

    /** Starts a new batch: the rows built so far may be overwritten. */
    void clear() {
        used = 0;
    }

    /**
     * The output row for {@code row} (an UnsafeRow of the input schema), at {@code index} of the batch, with its
     * predictions reserved but not yet written. It stays valid until the next {@link #clear()}.
     */
    UnsafeRow add(UnsafeRow row, int index) {
        int inputSize = row.getSizeInBytes();
        int variableBytes = inputSize - inputHeader;
        int size = outputHeader + variableBytes + tailBytes;
        if (used + size > arena.length) {
            // Rows already built keep the old array alive through their views; new rows go to a bigger one.
            arena = new byte[Math.max(arena.length * 2, used + size)];
            used = 0;
        }
        Object from = row.getBaseObject();
        long in = row.getBaseOffset();
        long base = Platform.BYTE_ARRAY_OFFSET + used;
        int inputBitSet = UnsafeRow.calculateBitSetWidthInBytes(inputFields);
        int outputBitSet = UnsafeRow.calculateBitSetWidthInBytes(outputFields);
        Platform.copyMemory(from, in, arena, base, inputBitSet);
        for (int b = inputBitSet; b < outputBitSet; b += 8) {
            Platform.putLong(arena, base + b, 0L);
        }
        Platform.copyMemory(from, in + inputBitSet, arena, base + outputBitSet, 8L * inputFields);
        long shift = (long) (outputHeader - inputHeader) << 32;
        for (int ordinal : variableLength) {
            long slot = base + outputBitSet + 8L * ordinal;
            long offsetAndSize = Platform.getLong(arena, slot);
            // A null field's slot is 0, except a null wide decimal's, which keeps its reserved offset: both stay valid.
            if (offsetAndSize != 0) {
                Platform.putLong(arena, slot, offsetAndSize + shift);
            }
        }
        Platform.copyMemory(from, in + inputHeader, arena, base + outputHeader, variableBytes);
        int tail = outputHeader + variableBytes;
        for (int k = 0; k < arrayWidth.length; k++) {
            long slot = base + outputBitSet + 8L * (inputFields + k);
            int width = arrayWidth[k];
            if (width == 0) {
                Platform.putLong(arena, slot, 0L);
                continue;
            }
            int bytes = arrayBytes(width);
            long start = base + tail + tailOffset[k];
            Platform.putLong(arena, slot, ((long) (tail + tailOffset[k]) << 32) | bytes);
            Platform.putLong(arena, start, width);
            for (long b = start + 8; b < start + 8 + ((width + 63) / 64) * 8; b += 8) {
                Platform.putLong(arena, b, 0L);
            }
            // The padding after an odd number of floats is part of the row's bytes (equality, hashing): zero it.
            Platform.putLong(arena, start + bytes - 8, 0L);
        }
        if (errorColumn) {
            int ordinal = outputFields - 1;
            Platform.putLong(arena, base + outputBitSet + 8L * ordinal, 0L);
            setNull(base, ordinal);
        }
        UnsafeRow view = views[index];
        if (view == null) {
            view = new UnsafeRow(outputFields);
            views[index] = view;
        }
        view.pointTo(arena, base, size);
        tails[index] = tail;
        used += size;
        return view;
    }

    private void setNull(long base, int ordinal) {
        long word = base + 8L * (ordinal >> 6);
        Platform.putLong(arena, word, Platform.getLong(arena, word) | (1L << (ordinal & 63)));
    }

    /** Writes array prediction {@code column} of row {@code index}: {@code width} floats from {@code values}. */
    void putFloats(int index, int column, float[] values) {
        UnsafeRow row = views[index];
        long start = row.getBaseOffset() + tails[index] + tailOffset[column] + 8 + ((arrayWidth[column] + 63) / 64) * 8L;
        Platform.copyMemory(values, Platform.FLOAT_ARRAY_OFFSET, row.getBaseObject(), start, 4L * arrayWidth[column]);
    }

    /** Writes scalar prediction {@code column} of row {@code index}. */
    void putFloat(int index, int column, float value) {
        views[index].setFloat(inputFields + column, value);
    }

    /** Writes scalar prediction {@code column} of row {@code index}. */
    void putInt(int index, int column, int value) {
        views[index].setInt(inputFields + column, value);
    }

    /** The output row at {@code index}, as built by the last {@link #add}. */
    UnsafeRow row(int index) {
        return views[index];
    }

    /** How many of an output row's fields are the input's (its first ones, as the input had them). */
    int inputFields() {
        return inputFields;
    }
}
