package dev.kiln.spark;

import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.catalyst.expressions.UnsafeRow;
import org.apache.spark.sql.types.StructField;
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
 * <b>Deferred columns.</b> A {@code float} array input that the scorer copies verbatim into its Arrow batch need not be
 * copied twice: {@link #addDeferred} keeps everything of the row but those arrays' values (a 512-float row: 2 KB of
 * its 2.1), and {@link #emit} assembles the whole row, when it is asked for, into one reused buffer, reading the values
 * back from the batch. A batch of rows is then written to memory once instead of twice (BENCHMARKS.md, Spark).
 * <p>
 * <b>In place.</b> When the deferred arrays lead the row's variable-length fields, their values sit at the same offsets
 * in every output row ({@link #fixedValueOffsets}): the caller writes them straight into off-heap rows a fixed stride
 * apart, which are its batch, and {@link #addInPlace} lays the rest of each row out around them, so the row handed out
 * needs no assembly.
 * <p>
 * Every row lives in one arena reused from batch to batch ({@code UnsafeRow.copy()} per row would allocate 2 KB per
 * 512-float row, a gigabyte per 500k rows). The rows handed out stay valid until {@link #clear()}, except an assembled
 * row, valid until the next {@link #emit}: Spark's contract, a consumer that keeps a row copies it.
 */
final class OutputRows implements ScoredRows {
    /** Room in place for the input's other variable-length fields (strings, other arrays), per row. */
    static final int IN_PLACE_SPARE = 256;
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
    /** Input ordinals of the deferred float-array columns, and their widths. */
    private final int[] deferred;
    private final int[] deferredWidth;
    private final int inputBitSet;
    private final int outputBitSet;
    /** Per row: the arena bytes it was written to (a full row's view, or a deferred row's stored part). */
    private final UnsafeRow[] views;
    /** Per row: byte offset, in the stored bytes, of its reserved tail. */
    private final int[] tails;
    /** Per row: the output row's size, and whether its deferred values are left out of the stored bytes. */
    private final int[] sizes;
    private final boolean[] isDeferred;
    /** Per deferred row: where each deferred array's values go in the output row, in increasing order, and which one. */
    private final int[][] holeAt;
    private final int[][] holeColumn;
    private byte[] arena = new byte[1 << 16];
    private int used;
    /** The assembled row {@link #emit} hands out, over a buffer reused from row to row. */
    private final UnsafeRow assembled;
    private byte[] assembly = new byte[1 << 12];

    /**
     * @param input       the input rows' schema
     * @param predictions values per row of each prediction column, 0 for a scalar (fixed-width) column
     * @param errorColumn whether a (string) error column follows the predictions
     */
    OutputRows(StructType input, List<Integer> predictions, boolean errorColumn, int capacity) {
        this(input, predictions, errorColumn, capacity, new int[0], new int[0]);
    }

    /**
     * @param deferred      input ordinals of {@code array<float>} columns whose values {@link #addDeferred} leaves out
     * @param deferredWidth the number of floats each of them holds in a deferred row
     */
    OutputRows(StructType input, List<Integer> predictions, boolean errorColumn, int capacity, int[] deferred, int[] deferredWidth) {
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
        for (int j = 0; j < deferred.length; j++) {
            int ordinal = deferred[j];
            if (!(input.fields()[ordinal].dataType() instanceof org.apache.spark.sql.types.ArrayType array
                    && array.elementType().equals(org.apache.spark.sql.types.DataTypes.FloatType))) {
                throw new IllegalArgumentException("Only array<float> columns can be deferred, column " + ordinal + " is " + input.fields()[ordinal].dataType().simpleString());
            }
            for (int earlier = 0; earlier < j; earlier++) {
                if (deferred[earlier] == ordinal) {
                    throw new IllegalArgumentException("Column " + ordinal + " is deferred twice");
                }
            }
        }
        this.deferred = deferred.clone();
        this.deferredWidth = deferredWidth.clone();
        this.inputBitSet = UnsafeRow.calculateBitSetWidthInBytes(inputFields);
        this.outputBitSet = UnsafeRow.calculateBitSetWidthInBytes(outputFields);
        this.views = new UnsafeRow[capacity];
        this.tails = new int[capacity];
        this.sizes = new int[capacity];
        this.isDeferred = new boolean[capacity];
        this.holeAt = new int[capacity][deferred.length];
        this.holeColumn = new int[capacity][deferred.length];
        this.assembled = new UnsafeRow(outputFields);
    }

    /** Bytes of an {@code UnsafeArrayData} of {@code width} floats: count, null bitmap, values padded to 8 bytes. */
    static int arrayBytes(int width) {
        return 8 + ((width + 63) / 64) * 8 + ((4 * width + 7) & ~7);
    }

    /** Starts a new batch: the rows built so far may be overwritten. */
    @Override
    public void clear() {
        used = 0;
    }

    /**
     * The output row for {@code row} (an UnsafeRow of the input schema), at {@code index} of the batch, with its
     * predictions reserved but not yet written. It stays valid until the next {@link #clear()}.
     */
    UnsafeRow add(UnsafeRow row, int index) {
        store(row, index, false);
        return views[index];
    }

    /** {@link ScoredRows#add}: {@code row} must be an UnsafeRow of the input schema. */
    @Override
    public void add(InternalRow row, int index) {
        add((UnsafeRow) row, index);
    }

    /**
     * As {@link #add}, but the values of the deferred columns are not copied: {@link #emit} reads them from where the
     * caller copied them. Each deferred column of {@code row} must be non-null and hold exactly its width of floats; a
     * row whose arrays are not laid out as Spark's writers lay them out (numElements, null bitmap, values padded to 8
     * bytes) is stored whole instead.
     */
    @Override
    public void addDeferred(InternalRow row, int index) {
        UnsafeRow unsafe = (UnsafeRow) row;
        store(unsafe, index, deferrable(unsafe));
    }

    private boolean deferrable(UnsafeRow row) {
        for (int j = 0; j < deferred.length; j++) {
            long offsetAndSize = Platform.getLong(row.getBaseObject(), row.getBaseOffset() + inputBitSet + 8L * deferred[j]);
            if (row.isNullAt(deferred[j]) || (int) offsetAndSize != arrayBytes(deferredWidth[j])
                    || Platform.getLong(row.getBaseObject(), row.getBaseOffset() + (offsetAndSize >>> 32)) != deferredWidth[j]) {
                return false;
            }
        }
        return true;
    }

    /** Whether row {@code index} was stored without its deferred values (so {@link #emit} reads them back). */
    @Override
    public boolean isDeferred(int index) {
        return isDeferred[index];
    }

    private void store(UnsafeRow row, int index, boolean defer) {
        int[] holes = holeAt[index];
        int[] columns = holeColumn[index];
        int skipped = defer ? findHoles(row, holes, columns) : 0;
        int size = outputHeader + row.getSizeInBytes() - inputHeader + tailBytes;
        // Stored parts stay 8-byte aligned (a row with an odd-width deferred array leaves out 4 bytes too many for that).
        int stored = (size - skipped + 7) & ~7;
        if (used + stored > arena.length) {
            // Rows already built keep the old array alive through their views; new rows go to a bigger one.
            arena = new byte[Math.max(arena.length * 2, used + stored)];
            used = 0;
        }
        write(row, index, defer, defer, arena, Platform.BYTE_ARRAY_OFFSET + used, size, skipped, stored);
        used += stored;
    }

    /**
     * Where output row {@code index}'s deferred values go, in input coordinates, in increasing order (with which
     * deferred column each is); returns the bytes they take.
     */
    private int findHoles(UnsafeRow row, int[] holes, int[] columns) {
        Object from = row.getBaseObject();
        long in = row.getBaseOffset();
        int skipped = 0;
        for (int j = 0; j < deferred.length; j++) {
            long offsetAndSize = Platform.getLong(from, in + inputBitSet + 8L * deferred[j]);
            int width = deferredWidth[j];
            int at = (int) (offsetAndSize >>> 32) + 8 + ((width + 63) / 64) * 8;
            int k = j;
            while (k > 0 && holes[k - 1] > at) {
                holes[k] = holes[k - 1];
                columns[k] = columns[k - 1];
                k--;
            }
            holes[k] = at;
            columns[k] = j;
            skipped += 4 * width;
        }
        return skipped;
    }

    /**
     * Lays output row {@code index} out at {@code base} of {@code to}: {@code size} bytes, less the {@code skipped}
     * bytes of the deferred values when they are left out ({@code compact}: the bytes after each move up; the view
     * then covers {@code stored} bytes) rather than left in place for the caller to fill.
     */
    private void write(UnsafeRow row, int index, boolean defer, boolean compact, Object to, long base, int size, int skipped, int stored) {
        Object from = row.getBaseObject();
        long in = row.getBaseOffset();
        int inputSize = row.getSizeInBytes();
        int variableBytes = inputSize - inputHeader;
        int[] holes = holeAt[index];
        int[] columns = holeColumn[index];
        Platform.copyMemory(from, in, to, base, inputBitSet);
        for (int b = inputBitSet; b < outputBitSet; b += 8) {
            Platform.putLong(to, base + b, 0L);
        }
        Platform.copyMemory(from, in + inputBitSet, to, base + outputBitSet, 8L * inputFields);
        long shift = (long) (outputHeader - inputHeader) << 32;
        for (int ordinal : variableLength) {
            long slot = base + outputBitSet + 8L * ordinal;
            long offsetAndSize = Platform.getLong(to, slot);
            // A null field's slot is 0, except a null wide decimal's, which keeps its reserved offset: both stay valid.
            if (offsetAndSize != 0) {
                Platform.putLong(to, slot, offsetAndSize + shift);
            }
        }
        if (defer) {
            // The variable-length bytes around the holes; the holes move to output coordinates.
            long read = in + inputHeader;
            long write = base + outputHeader;
            for (int k = 0; k < deferred.length; k++) {
                long gap = in + holes[k] - read;
                Platform.copyMemory(from, read, to, write, gap);
                long hole = 4L * deferredWidth[columns[k]];
                write += compact ? gap : gap + hole;
                read += gap + hole;
                holes[k] += outputHeader - inputHeader;
            }
            Platform.copyMemory(from, read, to, write, in + inputSize - read);
        } else {
            Platform.copyMemory(from, in + inputHeader, to, base + outputHeader, variableBytes);
        }
        int tail = outputHeader + variableBytes;
        int storedTail = compact ? tail - skipped : tail;
        for (int k = 0; k < arrayWidth.length; k++) {
            long slot = base + outputBitSet + 8L * (inputFields + k);
            int width = arrayWidth[k];
            if (width == 0) {
                Platform.putLong(to, slot, 0L);
                continue;
            }
            int bytes = arrayBytes(width);
            long start = base + storedTail + tailOffset[k];
            Platform.putLong(to, slot, ((long) (tail + tailOffset[k]) << 32) | bytes);
            Platform.putLong(to, start, width);
            for (long b = start + 8; b < start + 8 + ((width + 63) / 64) * 8; b += 8) {
                Platform.putLong(to, b, 0L);
            }
            // The padding after an odd number of floats is part of the row's bytes (equality, hashing): zero it.
            Platform.putLong(to, start + bytes - 8, 0L);
        }
        if (errorColumn) {
            int ordinal = outputFields - 1;
            Platform.putLong(to, base + outputBitSet + 8L * ordinal, 0L);
            long word = base + 8L * (ordinal >> 6);
            Platform.putLong(to, word, Platform.getLong(to, word) | (1L << (ordinal & 63)));
        }
        UnsafeRow view = views[index];
        if (view == null) {
            view = new UnsafeRow(outputFields);
            views[index] = view;
        }
        view.pointTo(to, base, compact ? stored : size);
        tails[index] = storedTail;
        sizes[index] = size;
        isDeferred[index] = defer && compact;
    }

    /**
     * Where, in an output row laid out as Spark lays it out, the values of each deferred column start, when that is
     * the same for every row: the deferred columns are the input's first variable-length fields (in field order), so
     * nothing of varying length comes before them. Null otherwise.
     */
    int[] fixedValueOffsets() {
        if (obstacle(variableLength, deferred) >= 0) {
            return null;
        }
        // The deferred arrays lead the variable-length bytes, in field order.
        int[] offsets = new int[deferred.length];
        int at = outputHeader;
        for (int ordinal : variableLength) {
            int j = indexOf(deferred, ordinal);
            if (j >= 0) {
                offsets[j] = at + 8 + ((deferredWidth[j] + 63) / 64) * 8;
                at += arrayBytes(deferredWidth[j]);
            }
        }
        return offsets;
    }

    /**
     * The field that keeps rows of {@code schema} from being built in place with the {@code array<float>} columns
     * {@code arrays} as their batch: the first variable-length field, in field order, that is not one of them and comes
     * before one of them (so the arrays' offset varies from row to row). Null when there is none.
     */
    static StructField inPlaceObstacle(StructType schema, int[] arrays) {
        int[] variable = java.util.stream.IntStream.range(0, schema.size())
                .filter(i -> !UnsafeRow.isFixedLength(schema.fields()[i].dataType())).toArray();
        int ordinal = obstacle(variable, arrays);
        return ordinal < 0 ? null : schema.fields()[ordinal];
    }

    /** Of the variable-length ordinals {@code variable} (ascending), the first not in {@code arrays} before one that is; or -1. */
    private static int obstacle(int[] variable, int[] arrays) {
        int last = java.util.Arrays.stream(arrays).max().orElse(-1);
        for (int ordinal : variable) {
            if (ordinal >= last) {
                break;
            }
            if (indexOf(arrays, ordinal) < 0) {
                return ordinal;
            }
        }
        return -1;
    }

    /**
     * Bytes each row gets in place: the output row of a row whose only variable-length fields are the deferred
     * arrays, plus {@value #IN_PLACE_SPARE} bytes when the input has other variable-length fields (a row with more goes
     * the usual way); a multiple of 8.
     */
    int inPlaceRowBytes() {
        int bytes = outputHeader + tailBytes;
        for (int width : deferredWidth) {
            bytes += arrayBytes(width);
        }
        return bytes + (variableLength.length > deferred.length ? IN_PLACE_SPARE : 0);
    }

    private static int indexOf(int[] values, int value) {
        for (int i = 0; i < values.length; i++) {
            if (values[i] == value) {
                return i;
            }
        }
        return -1;
    }

    /**
     * Stores output row {@code index} whole, in place, at off-heap {@code address} where the caller has already
     * written its deferred columns' values (at {@link #fixedValueOffsets()}): everything else of the row is laid out
     * around them, and the row handed out is those bytes, with nothing to assemble. Returns false, storing nothing,
     * when the row does not take that layout (a deferred array not as Spark's writers lay it out, or not where the
     * offsets say) or needs more than {@code room} bytes; the caller then stores it as usual.
     */
    boolean addInPlace(InternalRow row, int index, long address, int room, int[] valueOffsets) {
        UnsafeRow unsafe = (UnsafeRow) row;
        if (!deferrable(unsafe)) {
            return false;
        }
        int size = outputHeader + unsafe.getSizeInBytes() - inputHeader + tailBytes;
        if (size > room) {
            return false;
        }
        int[] holes = holeAt[index];
        int[] columns = holeColumn[index];
        findHoles(unsafe, holes, columns);
        for (int k = 0; k < deferred.length; k++) {
            if (holes[k] + outputHeader - inputHeader != valueOffsets[columns[k]]) {
                return false;
            }
        }
        write(unsafe, index, true, false, null, address, size, 0, size);
        return true;
    }

    /**
     * The output row at {@code index}: a full row's own bytes, or a deferred row assembled into a buffer reused by the
     * next call, with deferred column {@code j}'s values read from off-heap address {@code sources[j]}.
     */
    @Override
    public UnsafeRow emit(int index, long[] sources) {
        if (!isDeferred[index]) {
            return views[index];
        }
        int size = sizes[index];
        if (assembly.length < size) {
            assembly = new byte[Math.max(size, 2 * assembly.length)];
        }
        assemble(index, sources, assembly);
        assembled.pointTo(assembly, Platform.BYTE_ARRAY_OFFSET, size);
        return assembled;
    }

    /** As {@link #emit}, into bytes of its own: a row to keep (a bad row's input, for its error). */
    @Override
    public UnsafeRow materialize(int index, long[] sources) {
        if (!isDeferred[index]) {
            return views[index].copy();
        }
        byte[] bytes = new byte[sizes[index]];
        assemble(index, sources, bytes);
        UnsafeRow row = new UnsafeRow(outputFields);
        row.pointTo(bytes, bytes.length);
        return row;
    }

    private void assemble(int index, long[] sources, byte[] into) {
        UnsafeRow stored = views[index];
        Object from = stored.getBaseObject();
        long read = stored.getBaseOffset();
        long write = Platform.BYTE_ARRAY_OFFSET;
        long written = 0;
        int[] holes = holeAt[index];
        int[] columns = holeColumn[index];
        for (int k = 0; k < deferred.length; k++) {
            long gap = holes[k] - written;
            Platform.copyMemory(from, read, into, write + written, gap);
            read += gap;
            written += gap;
            long bytes = 4L * deferredWidth[columns[k]];
            Platform.copyMemory(null, sources[columns[k]], into, write + written, bytes);
            written += bytes;
        }
        Platform.copyMemory(from, read, into, write + written, sizes[index] - written);
    }

    /** Writes array prediction {@code column} of row {@code index}: {@code width} floats from {@code values}. */
    @Override
    public void putFloats(int index, int column, float[] values) {
        UnsafeRow row = views[index];
        long start = row.getBaseOffset() + tails[index] + tailOffset[column] + 8 + ((arrayWidth[column] + 63) / 64) * 8L;
        Platform.copyMemory(values, Platform.FLOAT_ARRAY_OFFSET, row.getBaseObject(), start, 4L * arrayWidth[column]);
    }

    /**
     * Writes scalar prediction {@code column} of row {@code index}. Its slot is in the fixed-width region, which a
     * deferred row stores as is, so the stored part's view writes it.
     */
    @Override
    public void putFloat(int index, int column, float value) {
        views[index].setFloat(inputFields + column, value);
    }

    /** Writes scalar prediction {@code column} of row {@code index}. */
    @Override
    public void putInt(int index, int column, int value) {
        views[index].setInt(inputFields + column, value);
    }

    /** The output row at {@code index}, as built by the last {@link #add} (not for a deferred row: see {@link #emit}). */
    @Override
    public UnsafeRow row(int index) {
        if (isDeferred[index]) {
            throw new IllegalStateException("Row " + index + " was added deferred: emit or materialize it");
        }
        return views[index];
    }

    /** How many of an output row's fields are the input's (its first ones, as the input had them). */
    @Override
    public int inputFields() {
        return inputFields;
    }
}
