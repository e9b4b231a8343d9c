package dev.kiln.spark;

import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.catalyst.expressions.GenericInternalRow;
import org.apache.spark.sql.catalyst.util.GenericArrayData;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.StructType;

/**
 * Output rows as plain values ({@link GenericInternalRow}: the input row's values read through its getters, then the
 * predictions as boxed floats, ints and {@link GenericArrayData}), for the public-API path: nothing here depends on how
 * Spark lays out its {@code UnsafeRow}s, so a Spark release that changed that layout would still score correctly
 * there. Slower than {@link OutputRows} (a boxed value per prediction element), and never defers a column.
 */
final class GenericRows implements ScoredRows {
    private final DataType[] types;
    private final int inputFields;
    private final int outputFields;
    private final Object[][] values;

    /**
     * @param input       the input rows' schema
     * @param predictions how many prediction columns follow the input's
     * @param errorColumn whether a (string) error column follows the predictions
     */
    GenericRows(StructType input, int predictions, boolean errorColumn, int capacity) {
        this.inputFields = input.size();
        this.types = new DataType[inputFields];
        for (int i = 0; i < inputFields; i++) {
            types[i] = input.fields()[i].dataType();
        }
        this.outputFields = inputFields + predictions + (errorColumn ? 1 : 0);
        this.values = new Object[capacity][];
    }

    @Override
    public void clear() {
        // Every row of the next batch is stored afresh.
    }

    @Override
    public void add(InternalRow row, int index) {
        // A copy through the row's own copy(): the caller's row may be reused for its next input row.
        InternalRow kept = row.copy();
        Object[] out = new Object[outputFields];
        for (int i = 0; i < inputFields; i++) {
            out[i] = kept.isNullAt(i) ? null : kept.get(i, types[i]);
        }
        values[index] = out;
    }

    @Override
    public void addDeferred(InternalRow row, int index) {
        add(row, index);
    }

    @Override
    public boolean isDeferred(int index) {
        return false;
    }

    @Override
    public InternalRow emit(int index, long[] sources) {
        return row(index);
    }

    @Override
    public InternalRow materialize(int index, long[] sources) {
        return row(index);
    }

    @Override
    public void putFloats(int index, int column, float[] floats) {
        Object[] boxed = new Object[floats.length];
        for (int i = 0; i < floats.length; i++) {
            boxed[i] = floats[i];
        }
        values[index][inputFields + column] = new GenericArrayData(boxed);
    }

    @Override
    public void putFloat(int index, int column, float value) {
        values[index][inputFields + column] = value;
    }

    @Override
    public void putInt(int index, int column, int value) {
        values[index][inputFields + column] = value;
    }

    /** A row of its own over the stored values (predictions not yet written are null). */
    @Override
    public InternalRow row(int index) {
        return new GenericInternalRow(values[index].clone());
    }

    @Override
    public int inputFields() {
        return inputFields;
    }
}
