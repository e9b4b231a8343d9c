package dev.kiln.spark;

import dev.kiln.engine.backend.cpu.FiniteCheck;
import org.apache.spark.rdd.RDD;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.catalyst.expressions.UnsafeArrayData;
import org.apache.spark.sql.catalyst.util.ArrayData;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.unsafe.Platform;

import java.nio.ByteBuffer;

/**
 * Every Spark-internal API Kiln uses, in one place: reading a DataFrame as internal rows, building one from them,
 * and bulk-copying the body of an {@code UnsafeArrayData}. They avoid Spark's boxing of every element of a nullable
 * {@code array<float>} (measured 3.5 µs per 512-float row against 0.1 µs). {@link #available()} checks them once;
 * when a Spark upgrade changes them, Kiln falls back to the public Row API (slower) and
 * {@code SparkInternalsTest} fails loudly.
 */
public final class SparkInternals {
    private static final boolean AVAILABLE = probe();

    private SparkInternals() {
    }

    private static boolean probe() {
        try {
            Class.forName("org.apache.spark.sql.classic.SparkSession").getMethod("internalCreateDataFrame", RDD.class, StructType.class, boolean.class);
            Class.forName("org.apache.spark.sql.classic.Dataset").getMethod("queryExecution");
            UnsafeArrayData.class.getMethod("getBaseObject");
            UnsafeArrayData.class.getMethod("getBaseOffset");
            UnsafeArrayData.calculateHeaderPortionInBytes(1);
            return true;
        } catch (ReflectiveOperationException | LinkageError e) {
            return false;
        }
    }

    /** Whether the internal-row path works with this Spark. */
    public static boolean available() {
        return AVAILABLE;
    }

    public static RDD<InternalRow> toInternalRdd(Dataset<Row> frame) {
        return ((org.apache.spark.sql.classic.Dataset<Row>) frame).queryExecution().toRdd();
    }

    public static Dataset<Row> fromInternalRdd(SparkSession spark, RDD<InternalRow> rows, StructType schema) {
        return ((org.apache.spark.sql.classic.SparkSession) spark).internalCreateDataFrame(rows, schema, false);
    }

    /** What {@link #copyFloatsChecked} returns when the array has a null element. */
    public static final int NULL_ELEMENT = -2;

    /**
     * Copies the {@code width} floats of {@code array} to {@code address} (byte {@code offset} of {@code batch}) and
     * screens them for NaN and infinities in the same pass. Returns -1 when all is well, the index of the first
     * non-finite value, or {@link #NULL_ELEMENT}. For an UnsafeArrayData on the heap (what Spark's rows hold): one
     * check of the null bitmap and one vectorized copy.
     */
    public static int copyFloatsChecked(ArrayData array, int width, long address, ByteBuffer batch, int offset) {
        if (array instanceof UnsafeArrayData unsafe && unsafe.getBaseObject() instanceof byte[] bytes) {
            long start = unsafe.getBaseOffset();
            int header = (int) UnsafeArrayData.calculateHeaderPortionInBytes(width);
            for (long word = start + 8; word < start + header; word += 8) {
                if (Platform.getLong(bytes, word) != 0) {
                    return NULL_ELEMENT;
                }
            }
            return FiniteCheck.copyChecked(bytes, (int) (start + header - Platform.BYTE_ARRAY_OFFSET), batch, offset, width);
        }
        if (!copyFloats(array, width, address)) {
            return NULL_ELEMENT;
        }
        return FiniteCheck.firstNonFinite(batch, offset, width);
    }

    /**
     * Copies the {@code width} floats of {@code array} to off-heap {@code address}. Returns false when an element is
     * null (nothing meaningful is copied then). For UnsafeArrayData: one check of the null bitmap and one memory copy.
     */
    public static boolean copyFloats(ArrayData array, int width, long address) {
        if (array instanceof UnsafeArrayData unsafe) {
            Object base = unsafe.getBaseObject();
            long offset = unsafe.getBaseOffset();
            int header = (int) UnsafeArrayData.calculateHeaderPortionInBytes(width);
            for (long word = offset + 8; word < offset + header; word += 8) {
                if (Platform.getLong(base, word) != 0) {
                    return false;
                }
            }
            Platform.copyMemory(base, offset + header, null, address, width * 4L);
            return true;
        }
        for (int i = 0; i < width; i++) {
            if (array.isNullAt(i)) {
                return false;
            }
            Platform.putFloat(null, address + 4L * i, array.getFloat(i));
        }
        return true;
    }

}
