package dev.kiln.spark;

import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.catalyst.expressions.GenericInternalRow;
import org.apache.spark.sql.catalyst.expressions.UnsafeProjection;
import org.apache.spark.sql.catalyst.expressions.UnsafeRow;
import org.apache.spark.sql.catalyst.util.GenericArrayData;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;

class HeldRowsTest {
    private static final DataType[] TYPES = {DataTypes.LongType, DataTypes.createArrayType(DataTypes.FloatType)};

    /** A projection reuses its output row, as Spark's scans do: every held row must keep its own values. */
    @Test
    void heldRowsSurviveTheSourceRowBeingReusedAndTheArenaGrowing() {
        UnsafeProjection projection = UnsafeProjection.create(TYPES);
        HeldRows held = new HeldRows(300);
        for (int batch = 0; batch < 3; batch++) {
            held.clear();
            InternalRow[] kept = new InternalRow[300];
            for (int i = 0; i < 300; i++) {
                UnsafeRow source = projection.apply(row(batch * 1000L + i, 64 + i));
                kept[i] = held.hold(source, i);
            }
            for (int i = 0; i < 300; i++) {
                assertThat(kept[i].getLong(0)).isEqualTo(batch * 1000L + i);
                float[] values = kept[i].getArray(1).toFloatArray();
                assertThat(values).hasSize(64 + i);
                assertThat(values[values.length - 1]).isEqualTo((batch * 1000L + i) + 0.5f * (values.length - 1));
            }
        }
    }

    @Test
    void otherRowsAreCopied() {
        GenericInternalRow row = row(5, 3);
        InternalRow kept = new HeldRows(1).hold(row, 0);
        row.update(0, 6L);
        assertThat(kept.getLong(0)).isEqualTo(5L);
    }

    private static GenericInternalRow row(long key, int width) {
        float[] values = new float[width];
        for (int j = 0; j < width; j++) {
            values[j] = key + 0.5f * j;
        }
        return new GenericInternalRow(new Object[] {key, new GenericArrayData(boxed(values))});
    }

    private static Object[] boxed(float[] values) {
        Object[] out = new Object[values.length];
        for (int i = 0; i < values.length; i++) {
            out[i] = values[i];
        }
        return out;
    }
}
