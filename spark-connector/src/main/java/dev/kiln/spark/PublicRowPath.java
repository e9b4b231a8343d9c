package dev.kiln.spark;

import org.apache.spark.TaskContext;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.ml.linalg.Vector;
import org.apache.spark.ml.linalg.VectorUDT;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.catalyst.expressions.GenericInternalRow;
import org.apache.spark.sql.catalyst.util.ArrayData;
import org.apache.spark.sql.catalyst.util.GenericArrayData;
import org.apache.spark.sql.types.ArrayType;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.unsafe.types.UTF8String;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;

/**
 * The slower path for a Spark whose internals differ from what {@link SparkInternals} expects: the DataFrame is read
 * and written as public {@link Row}s ({@code javaRDD()}, {@code createDataFrame}; Spark boxes every array element),
 * the model's input columns are handed to the same {@link PartitionScorer} batching, screening and error handling in
 * its layout-free form ({@link GenericRows}: values read through the getters of DataSource V2's row interfaces, no
 * UnsafeRow built, no bytes copied by offset), and the predictions are appended to the original rows, in order. Also
 * forced with {@code spark.kiln.useInternalRows=false}.
 */
final class PublicRowPath {
    private PublicRowPath() {
    }

    static Dataset<Row> transform(SparkSession spark, Dataset<Row> frame, ScoringPlan plan, StructType outputSchema) {
        StructType inputSchema = frame.schema();
        int inputWidth = inputSchema.length();
        // Only the columns the scorer reads are converted (the output takes every input column from the original Row):
        // Spark's internal form of other types (arrays of strings, nested arrays, dates) is not what toInternal makes.
        boolean[] read = new boolean[inputWidth];
        for (InputAdapter adapter : plan.inputs()) {
            for (int ordinal : adapter.ordinals()) {
                read[ordinal] = true;
            }
        }
        if (plan.keyOrdinal() >= 0) {
            read[plan.keyOrdinal()] = true;
        }
        JavaRDD<Row> scored = frame.javaRDD().mapPartitions(rows -> {
            ArrayDeque<Row> pending = new ArrayDeque<>();
            Iterator<InternalRow> internal = new Iterator<>() {
                @Override
                public boolean hasNext() {
                    return rows.hasNext();
                }

                @Override
                public InternalRow next() {
                    Row row = rows.next();
                    pending.addLast(row);
                    return toInternal(row, inputSchema, read);
                }
            };
            PartitionScorer scorer = new PartitionScorer(plan, internal, TaskContext.get(), true);
            return new Iterator<Row>() {
                @Override
                public boolean hasNext() {
                    return scorer.hasNext();
                }

                @Override
                public Row next() {
                    InternalRow joined = scorer.next();
                    Row original = pending.pollFirst();
                    Object[] values = new Object[outputSchema.length()];
                    for (int i = 0; i < inputWidth; i++) {
                        values[i] = original.get(i);
                    }
                    for (int i = inputWidth; i < values.length; i++) {
                        values[i] = toExternal(joined, i, outputSchema.fields()[i].dataType());
                    }
                    return RowFactory.create(values);
                }
            };
        });
        return spark.createDataFrame(scored, outputSchema);
    }

    /**
     * The row's values in Spark's internal form (arrays, vectors, strings converted; other numbers as they are), for
     * the columns marked in {@code read}; the others are left null.
     */
    static InternalRow toInternal(Row row, StructType schema, boolean[] read) {
        GenericInternalRow internal = new GenericInternalRow(schema.length());
        for (int i = 0; i < schema.length(); i++) {
            if (!read[i] || row.isNullAt(i)) {
                continue;
            }
            DataType type = schema.fields()[i].dataType();
            Object value = row.get(i);
            if (type instanceof ArrayType) {
                List<Object> list = row.getList(i);
                internal.update(i, new GenericArrayData(list.toArray()));
            } else if (type instanceof VectorUDT udt) {
                internal.update(i, udt.serialize((Vector) value));
            } else if (type.equals(DataTypes.StringType)) {
                internal.update(i, UTF8String.fromString((String) value));
            } else {
                // Numbers and booleans are the same inside and out. Any other type is a key column's (inputs are
                // arrays, vectors or numbers): its external value (a date, a timestamp, a decimal) is kept as it is,
                // for the error messages that name a bad row by it.
                internal.update(i, value);
            }
        }
        return internal;
    }

    private static Object toExternal(InternalRow row, int ordinal, DataType type) {
        if (row.isNullAt(ordinal)) {
            return null;
        }
        if (type instanceof ArrayType) {
            ArrayData array = row.getArray(ordinal);
            List<Object> out = new ArrayList<>(array.numElements());
            for (int i = 0; i < array.numElements(); i++) {
                out.add(array.getFloat(i));
            }
            // External rows hold arrays as Scala sequences.
            return scala.jdk.javaapi.CollectionConverters.asScala(out).toSeq();
        }
        if (type.equals(DataTypes.StringType)) {
            return row.getUTF8String(ordinal).toString();
        }
        if (type.equals(DataTypes.IntegerType)) {
            return row.getInt(ordinal);
        }
        return row.getFloat(ordinal);
    }
}
