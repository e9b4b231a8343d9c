package dev.kiln.spark;

import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.catalyst.util.ArrayData;
import org.apache.spark.unsafe.Platform;

import java.io.Serializable;
import java.nio.ByteBuffer;

/**
 * Writes one graph input of one row, as {@link #width()} float32 values, to off-heap memory (the task's Arrow batch).
 * Returns null when the row is usable, or why it is not (null, wrong length), so the caller can fail the job or null
 * the row's outputs. Non-finite values are refused while copying ({@code array<float>}, the common case) or screened
 * afterwards for the whole batch at once (the others). One implementation per accepted column kind.
 */
public abstract class InputAdapter implements Serializable {
    private static final long serialVersionUID = 1L;

    /** The columns read, for messages. */
    public abstract String columns();

    public abstract int width();

    /** Ordinals of the columns read. */
    abstract int[] ordinals();

    /**
     * Writes the row's values at {@code address}, which is byte {@code offset} of {@code batch}; returns null or the
     * reason the row cannot be scored.
     */
    public abstract String write(InternalRow row, long address, ByteBuffer batch, int offset);

    /** Whether {@link #write} also refuses NaN and infinite values, so the batch needs no screening afterwards. */
    public boolean screensNonFinite() {
        return false;
    }

    /**
     * Whether a row {@link #write} accepted has its one column's values in the batch byte for byte: a non-null
     * {@code array<float>} of exactly {@link #width()} elements, as it sits in the row. The scorer then reads them back
     * from the batch for the output row instead of storing them twice.
     */
    boolean copiesVerbatim() {
        return false;
    }

    /** An adapter reading one column of {@code width} values per row. */
    abstract static class SingleColumn extends InputAdapter {
        private static final long serialVersionUID = 1L;
        final int ordinal;
        final String name;
        final int width;

        SingleColumn(int ordinal, String name, int width) {
            this.ordinal = ordinal;
            this.name = name;
            this.width = width;
        }

        @Override
        public String columns() {
            return name;
        }

        @Override
        int[] ordinals() {
            return new int[] {ordinal};
        }

        @Override
        public int width() {
            return width;
        }

        /** Why the row's array column cannot be used, or null: it is null or not {@code width} long. */
        final String arrayProblem(ArrayData array, String type) {
            if (array == null) {
                return "expected " + type + " of length " + width + ", got null";
            }
            return array.numElements() == width ? null : "expected " + type + " of length " + width + ", got length " + array.numElements();
        }

        /** The row's array column, or null when the value is null. */
        final ArrayData arrayOrNull(InternalRow row) {
            return row.isNullAt(ordinal) ? null : row.getArray(ordinal);
        }

        final String nullElements(String type) {
            return "expected " + type + " of length " + width + ", got null elements";
        }
    }

    /** {@code array<float>} of a fixed length: one null-bitmap check and one memory copy per row. */
    static final class FloatArrayColumn extends SingleColumn {
        private static final long serialVersionUID = 1L;

        FloatArrayColumn(int ordinal, String name, int width) {
            super(ordinal, name, width);
        }

        @Override
        public String write(InternalRow row, long address, ByteBuffer batch, int offset) {
            ArrayData array = arrayOrNull(row);
            String problem = arrayProblem(array, "array<float>");
            if (problem != null) {
                return problem;
            }
            int bad = SparkInternals.copyFloatsChecked(array, width, address, batch, offset);
            if (bad == SparkInternals.NULL_ELEMENT) {
                return nullElements("array<float>");
            }
            return bad < 0 ? null : "value at index " + bad + " is " + array.getFloat(bad);
        }

        @Override
        public boolean screensNonFinite() {
            return true;
        }

        @Override
        boolean copiesVerbatim() {
            return true;
        }
    }

    /**
     * {@code array<int>}, {@code array<long>}, {@code array<short>} or {@code array<byte>} (token ids for an
     * embedding), as float32: exact for magnitudes up to 2^24, and a row holding a larger value is refused rather than
     * rounded to a different id.
     */
    static final class IntegerArrayColumn extends SingleColumn {
        private static final long serialVersionUID = 1L;
        private static final long EXACT = 1L << 24;
        private final String elementName;
        private final String type;

        IntegerArrayColumn(int ordinal, String name, int width, org.apache.spark.sql.types.DataType elementType) {
            super(ordinal, name, width);
            this.elementName = elementType.typeName();
            this.type = "array<" + elementType.simpleString() + ">";
        }

        @Override
        public String write(InternalRow row, long address, ByteBuffer batch, int offset) {
            ArrayData array = arrayOrNull(row);
            String problem = arrayProblem(array, type);
            if (problem != null) {
                return problem;
            }
            for (int i = 0; i < width; i++) {
                if (array.isNullAt(i)) {
                    return nullElements(type);
                }
                long v = switch (elementName) {
                    case "long" -> array.getLong(i);
                    case "short" -> array.getShort(i);
                    case "byte" -> array.getByte(i);
                    default -> array.getInt(i);
                };
                if (v > EXACT || v < -EXACT) {
                    return "value " + v + " at index " + i + " is beyond 2^24 and has no exact float32 form";
                }
                Platform.putFloat(null, address + 4L * i, v);
            }
            return null;
        }

        @Override
        public boolean screensNonFinite() {
            return true;
        }
    }

    /** {@code array<double>}, converted to float32 per element. */
    static final class DoubleArrayColumn extends SingleColumn {
        private static final long serialVersionUID = 1L;

        DoubleArrayColumn(int ordinal, String name, int width) {
            super(ordinal, name, width);
        }

        @Override
        public String write(InternalRow row, long address, ByteBuffer batch, int offset) {
            ArrayData array = arrayOrNull(row);
            String problem = arrayProblem(array, "array<double>");
            if (problem != null) {
                return problem;
            }
            for (int i = 0; i < width; i++) {
                if (array.isNullAt(i)) {
                    return nullElements("array<double>");
                }
                Platform.putFloat(null, address + 4L * i, (float) array.getDouble(i));
            }
            return null;
        }
    }

    /** A Spark ML {@code Vector} (dense or sparse), converted to float32. */
    static final class VectorColumn extends SingleColumn {
        private static final long serialVersionUID = 1L;

        VectorColumn(int ordinal, String name, int width) {
            super(ordinal, name, width);
        }

        @Override
        public String write(InternalRow row, long address, ByteBuffer batch, int offset) {
            if (row.isNullAt(ordinal)) {
                return "expected a vector of size " + width + ", got null";
            }
            // VectorUDT's internal form: (type: 0 sparse / 1 dense, size, indices, values).
            InternalRow vector = row.getStruct(ordinal, 4);
            boolean dense = vector.getByte(0) == 1;
            ArrayData values = vector.getArray(3);
            int size = dense ? values.numElements() : vector.getInt(1);
            if (size != width) {
                return "expected a vector of size " + width + ", got size " + size;
            }
            if (dense) {
                for (int i = 0; i < width; i++) {
                    Platform.putFloat(null, address + 4L * i, (float) values.getDouble(i));
                }
            } else {
                Platform.setMemory(address, (byte) 0, 4L * width);
                ArrayData indices = vector.getArray(2);
                if (indices.numElements() != values.numElements()) {
                    return "sparse vector has " + indices.numElements() + " indices but " + values.numElements() + " values";
                }
                for (int k = 0; k < indices.numElements(); k++) {
                    int i = indices.getInt(k);
                    if (i < 0 || i >= width) {
                        return "sparse vector index " + i + " is outside size " + width;
                    }
                    Platform.putFloat(null, address + 4L * i, (float) values.getDouble(k));
                }
            }
            return null;
        }
    }

    /** Several numeric columns assembled, in order, into one input of that many values. */
    static final class NumericColumns extends InputAdapter {
        private static final long serialVersionUID = 1L;
        private final int[] ordinals;
        private final String[] names;
        private final char[] kinds;

        /** {@code kinds}: f float, d double, i int, l long, s short, b byte. */
        @Override
        int[] ordinals() {
            return ordinals.clone();
        }

        NumericColumns(int[] ordinals, String[] names, char[] kinds) {
            this.ordinals = ordinals;
            this.names = names;
            this.kinds = kinds;
        }

        @Override
        public String columns() {
            return String.join(", ", names);
        }

        @Override
        public int width() {
            return ordinals.length;
        }

        @Override
        public String write(InternalRow row, long address, ByteBuffer batch, int offset) {
            for (int c = 0; c < ordinals.length; c++) {
                int o = ordinals[c];
                if (row.isNullAt(o)) {
                    return "column '" + names[c] + "' is null";
                }
                float v = switch (kinds[c]) {
                    case 'f' -> row.getFloat(o);
                    case 'd' -> (float) row.getDouble(o);
                    case 'i' -> row.getInt(o);
                    case 'l' -> row.getLong(o);
                    case 's' -> row.getShort(o);
                    default -> row.getByte(o);
                };
                if (!Float.isFinite(v)) {
                    return "column '" + names[c] + "' is " + v;
                }
                Platform.putFloat(null, address + 4L * c, v);
            }
            return null;
        }
    }
}
