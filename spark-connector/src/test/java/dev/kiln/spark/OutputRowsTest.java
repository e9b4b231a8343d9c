package dev.kiln.spark;

import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.catalyst.expressions.GenericInternalRow;
import org.apache.spark.sql.catalyst.expressions.JoinedRow;
import org.apache.spark.sql.catalyst.expressions.UnsafeArrayData;
import org.apache.spark.sql.catalyst.expressions.UnsafeProjection;
import org.apache.spark.sql.catalyst.expressions.UnsafeRow;
import org.apache.spark.sql.catalyst.util.ArrayBasedMapData;
import org.apache.spark.sql.catalyst.util.GenericArrayData;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.Decimal;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.unsafe.types.UTF8String;
import org.junit.jupiter.api.Test;

import java.math.BigDecimal;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * OutputRows builds output rows byte by byte; Spark's own {@code UnsafeProjection} of the input row joined with the
 * predictions is the second implementation every row is compared with, byte for byte.
 */
class OutputRowsTest {
    private static final DataType[] KINDS = {
        DataTypes.LongType, DataTypes.IntegerType, DataTypes.BooleanType, DataTypes.DoubleType, DataTypes.StringType,
        DataTypes.createArrayType(DataTypes.FloatType, false), DataTypes.createDecimalType(10, 2), DataTypes.createDecimalType(30, 5),
        new StructType().add("a", DataTypes.IntegerType).add("b", DataTypes.StringType),
        DataTypes.createMapType(DataTypes.StringType, DataTypes.IntegerType), DataTypes.BinaryType,
    };

    @Test
    void rowsMatchSparksProjectionOfTheInputJoinedWithItsPredictions() {
        Random random = new Random(7);
        for (int trial = 0; trial < 60; trial++) {
            // Field counts around 64 move the output's null bitmap to a second word.
            int fields = trial % 3 == 0 ? 62 + random.nextInt(4) : 1 + random.nextInt(8);
            StructType input = randomSchema(fields, random);
            List<Integer> widths = new ArrayList<>();
            StructType output = input;
            int predictions = 1 + random.nextInt(3);
            for (int k = 0; k < predictions; k++) {
                int kind = random.nextInt(4);
                int width = kind == 0 ? 0 : new int[] {1, 2, 3, 64, 65, 513}[random.nextInt(6)];
                widths.add(kind == 0 ? 0 : width);
                output = output.add("p" + k, kind == 0 ? (random.nextBoolean() ? DataTypes.FloatType : DataTypes.IntegerType)
                        : DataTypes.createArrayType(DataTypes.FloatType, false), true);
            }
            boolean errorColumn = random.nextBoolean();
            if (errorColumn) {
                output = output.add("error", DataTypes.StringType, true);
            }
            StructType in = input;
            UnsafeProjection source = UnsafeProjection.create(in);
            UnsafeProjection expected = UnsafeProjection.create(output);
            int batch = 1 + random.nextInt(40);
            OutputRows rows = new OutputRows(in, widths, errorColumn, batch);
            for (int b = 0; b < 3; b++) {
                rows.clear();
                Object[][] predictionValues = new Object[batch][];
                InternalRow[] inputs = new InternalRow[batch];
                for (int r = 0; r < batch; r++) {
                    inputs[r] = randomRow(in, random);
                    // The source projection reuses its row, as Spark's scans do.
                    rows.add(source.apply(inputs[r]), r);
                }
                for (int r = 0; r < batch; r++) {
                    predictionValues[r] = new Object[predictions + (errorColumn ? 1 : 0)];
                    for (int k = 0; k < predictions; k++) {
                        DataType type = output.fields()[fields + k].dataType();
                        if (widths.get(k) > 0) {
                            float[] values = new float[widths.get(k)];
                            for (int i = 0; i < values.length; i++) {
                                values[i] = random.nextFloat() - 0.5f;
                            }
                            rows.putFloats(r, k, values);
                            predictionValues[r][k] = UnsafeArrayData.fromPrimitiveArray(values);
                        } else if (type.equals(DataTypes.FloatType)) {
                            float value = random.nextFloat();
                            rows.putFloat(r, k, value);
                            predictionValues[r][k] = value;
                        } else {
                            int value = random.nextInt();
                            rows.putInt(r, k, value);
                            predictionValues[r][k] = value;
                        }
                    }
                }
                for (int r = 0; r < batch; r++) {
                    UnsafeRow want = expected.apply(new JoinedRow(inputs[r], new GenericInternalRow(predictionValues[r])));
                    UnsafeRow got = rows.row(r);
                    assertThat(got.getBytes()).as("trial %d batch %d row %d of %s", trial, b, r, output.simpleString()).isEqualTo(want.getBytes());
                    assertThat(got.numFields()).isEqualTo(output.size());
                }
            }
        }
    }

    /**
     * Deferred columns: rows whose float arrays are left out when stored and read back from an off-heap batch when
     * emitted must still be, byte for byte, Spark's projection of the input joined with the predictions; so must the
     * rows stored whole beside them (a null or wrong-length array), and the kept copies {@code materialize} makes.
     */
    @Test
    void deferredRowsMatchSparksProjectionWhenTheirValuesComeFromTheBatch() {
        Random random = new Random(11);
        for (int trial = 0; trial < 60; trial++) {
            int fields = trial % 3 == 0 ? 62 + random.nextInt(4) : 1 + random.nextInt(8);
            StructType input = randomSchema(fields, random);
            // One or two deferred float arrays, anywhere among the fields, of widths odd and even.
            int deferredCount = Math.min(fields, 1 + random.nextInt(2));
            // In no particular order: the scorer passes them in the order of the model's inputs.
            int[] deferred = random.ints(0, fields).distinct().limit(deferredCount).toArray();
            int[] widths = new int[deferred.length];
            StructType in = withFloatArrays(input, deferred, widths, random);
            List<Integer> predictionWidths = new ArrayList<>();
            boolean errorColumn = random.nextBoolean();
            StructType output = withPredictions(in, predictionWidths, errorColumn, random);
            UnsafeProjection source = UnsafeProjection.create(in);
            UnsafeProjection expected = UnsafeProjection.create(output);
            int batch = 1 + random.nextInt(40);
            OutputRows rows = new OutputRows(in, predictionWidths, errorColumn, batch, deferred, widths);
            long[] addresses = new long[deferred.length];
            for (int j = 0; j < deferred.length; j++) {
                addresses[j] = org.apache.spark.unsafe.Platform.allocateMemory((long) batch * widths[j] * 4);
            }
            try {
            for (int b = 0; b < 3; b++) {
                rows.clear();
                InternalRow[] inputs = new InternalRow[batch];
                Object[][] predictionValues = new Object[batch][];
                int[] slot = new int[batch];
                int slots = 0;
                for (int r = 0; r < batch; r++) {
                    GenericInternalRow row = (GenericInternalRow) randomRow(in, random);
                    boolean whole = true;
                    for (int j = 0; j < deferred.length; j++) {
                        int kind = random.nextInt(10);
                        float[] values = new float[kind == 0 ? widths[j] + 1 : widths[j]];
                        for (int i = 0; i < values.length; i++) {
                            values[i] = random.nextFloat() - 0.5f;
                        }
                        row.update(deferred[j], kind == 1 ? null : UnsafeArrayData.fromPrimitiveArray(values));
                        whole &= kind > 1;
                    }
                    inputs[r] = row;
                    UnsafeRow unsafe = source.apply(row);
                    if (whole) {
                        // What the scorer's adapter does: the array's values into the batch slot, then the rest stored.
                        for (int j = 0; j < deferred.length; j++) {
                            float[] values = unsafe.getArray(deferred[j]).toFloatArray();
                            for (int i = 0; i < widths[j]; i++) {
                                org.apache.spark.unsafe.Platform.putFloat(null, addresses[j] + (slots * (long) widths[j] + i) * 4, values[i]);
                            }
                        }
                        rows.addDeferred(unsafe, r);
                        slot[r] = slots++;
                    } else {
                        // A null or wrong-length array: the scorer stores such rows whole; given one, addDeferred does too.
                        if (random.nextBoolean()) {
                            rows.add(unsafe, r);
                        } else {
                            rows.addDeferred(unsafe, r);
                        }
                        assertThat(rows.isDeferred(r)).isFalse();
                        slot[r] = -1;
                    }
                }
                for (int r = 0; r < batch; r++) {
                    predictionValues[r] = putRandomPredictions(rows, r, predictionWidths, errorColumn, random);
                }
                for (int r = 0; r < batch; r++) {
                    long[] sources = new long[deferred.length];
                    for (int j = 0; j < deferred.length; j++) {
                        sources[j] = addresses[j] + (long) Math.max(slot[r], 0) * widths[j] * 4;
                    }
                    byte[] want = expected.apply(new JoinedRow(inputs[r], new GenericInternalRow(predictionValues[r]))).getBytes();
                    String what = String.format("trial %d batch %d row %d (%s) of %s", trial, b, r, slot[r] < 0 ? "stored whole" : "deferred", output.simpleString());
                    UnsafeRow kept = rows.materialize(r, sources);
                    UnsafeRow emitted = rows.emit(r, sources);
                    assertThat(emitted.getBytes()).as(what).isEqualTo(want);
                    assertThat(emitted.numFields()).isEqualTo(output.size());
                    assertThat(kept.getBytes()).as("kept copy of " + what).isEqualTo(want);
                    if (slot[r] >= 0) {
                        int index = r;
                        org.assertj.core.api.Assertions.assertThatThrownBy(() -> rows.row(index))
                                .isInstanceOf(IllegalStateException.class).hasMessageContaining("deferred");
                    }
                }
            }
            } finally {
                for (long address : addresses) {
                    org.apache.spark.unsafe.Platform.freeMemory(address);
                }
            }
        }
    }

    /**
     * Rows in place: the caller writes a row's float arrays into off-heap memory first, at the offsets
     * {@code fixedValueOffsets} gives, and the row is laid out around them there. Each must be, byte for byte, Spark's
     * projection of the input joined with the predictions, at that address; a row that needs more than the room is
     * stored as usual and still matches. The offsets exist exactly when no other variable-length field comes before a
     * deferred array (worked out here from the schema, independently of OutputRows).
     */
    @Test
    void rowsInPlaceMatchSparksProjectionAroundValuesWrittenFirst() {
        Random random = new Random(13);
        int inPlace = 0;
        int overflowed = 0;
        for (int trial = 0; trial < 80; trial++) {
            int fields = trial % 4 == 0 ? 62 + random.nextInt(4) : 1 + random.nextInt(8);
            StructType input = randomSchema(fields, random);
            int deferredCount = Math.min(fields, 1 + random.nextInt(2));
            int[] deferred;
            if (random.nextBoolean()) {
                // The first variable-length fields (or the first fields, where too few are) become the arrays.
                StructType typed = input;
                int[] variable = java.util.stream.IntStream.range(0, fields).filter(i -> !UnsafeRow.isFixedLength(typed.fields()[i].dataType())).toArray();
                deferred = variable.length >= deferredCount ? java.util.Arrays.copyOf(variable, deferredCount)
                        : java.util.stream.IntStream.range(0, deferredCount).toArray();
                if (random.nextBoolean() && deferred.length == 2) {
                    deferred = new int[] {deferred[1], deferred[0]};
                }
            } else {
                deferred = random.ints(0, fields).distinct().limit(deferredCount).toArray();
            }
            int[] widths = new int[deferred.length];
            StructType in = withFloatArrays(input, deferred, widths, random);
            List<Integer> predictionWidths = new ArrayList<>();
            boolean errorColumn = random.nextBoolean();
            StructType output = withPredictions(in, predictionWidths, errorColumn, random);
            int batch = 1 + random.nextInt(20);
            OutputRows rows = new OutputRows(in, predictionWidths, errorColumn, batch, deferred, widths);
            int[] offsets = rows.fixedValueOffsets();
            boolean leading = true;
            // By hand: some variable-length field that is not a deferred array comes before a deferred one.
            int lastDeferred = java.util.Arrays.stream(deferred).max().getAsInt();
            for (int i = 0; i < lastDeferred; i++) {
                if (!UnsafeRow.isFixedLength(in.fields()[i].dataType()) && indexOf(deferred, i) < 0) {
                    leading = false;
                }
            }
            assertThat(offsets != null).as("trial %d: offsets for %s deferring %s", trial, in.simpleString(), java.util.Arrays.toString(deferred)).isEqualTo(leading);
            if (!leading) {
                continue;
            }
            inPlace++;
            int stride = rows.inPlaceRowBytes();
            assertThat(stride % 8).isZero();
            UnsafeProjection source = UnsafeProjection.create(in);
            UnsafeProjection expected = UnsafeProjection.create(output);
            long memory = org.apache.spark.unsafe.Platform.allocateMemory((long) batch * stride);
            try {
                for (int b = 0; b < 3; b++) {
                    rows.clear();
                    InternalRow[] inputs = new InternalRow[batch];
                    Object[][] predictionValues = new Object[batch][];
                    boolean[] placed = new boolean[batch];
                    for (int r = 0; r < batch; r++) {
                        GenericInternalRow row = (GenericInternalRow) randomRow(in, random);
                        for (int j = 0; j < deferred.length; j++) {
                            float[] values = new float[widths[j]];
                            for (int i = 0; i < values.length; i++) {
                                values[i] = random.nextFloat() - 0.5f;
                            }
                            row.update(deferred[j], UnsafeArrayData.fromPrimitiveArray(values));
                        }
                        inputs[r] = row;
                        UnsafeRow unsafe = source.apply(row);
                        long base = memory + (long) r * stride;
                        // What the scorer's adapter does: each array's values into the row's place, then the row.
                        for (int j = 0; j < deferred.length; j++) {
                            float[] values = unsafe.getArray(deferred[j]).toFloatArray();
                            for (int i = 0; i < widths[j]; i++) {
                                org.apache.spark.unsafe.Platform.putFloat(null, base + offsets[j] + 4L * i, values[i]);
                            }
                        }
                        placed[r] = rows.addInPlace(unsafe, r, base, stride, offsets);
                        if (!placed[r]) {
                            rows.add(unsafe, r);
                            overflowed++;
                        }
                    }
                    for (int r = 0; r < batch; r++) {
                        predictionValues[r] = putRandomPredictions(rows, r, predictionWidths, errorColumn, random);
                    }
                    for (int r = 0; r < batch; r++) {
                        UnsafeRow want = expected.apply(new JoinedRow(inputs[r], new GenericInternalRow(predictionValues[r])));
                        String what = String.format("trial %d batch %d row %d (%s) of %s", trial, b, r, placed[r] ? "in place" : "stored", output.simpleString());
                        assertThat(placed[r]).as("fits: " + what).isEqualTo(want.getSizeInBytes() <= stride);
                        UnsafeRow got = rows.row(r);
                        assertThat(rows.isDeferred(r)).isFalse();
                        assertThat(got.getBytes()).as(what).isEqualTo(want.getBytes());
                        if (placed[r]) {
                            assertThat(got.getBaseObject()).as("in place: " + what).isNull();
                            assertThat(got.getBaseOffset()).isEqualTo(memory + (long) r * stride);
                        }
                    }
                }
            } finally {
                org.apache.spark.unsafe.Platform.freeMemory(memory);
            }
        }
        assertThat(inPlace).as("trials laid out in place").isGreaterThan(20);
        assertThat(overflowed).as("rows that needed more than their room").isGreaterThan(5);
    }

    /**
     * What keeps a schema from rows in place, by hand: the first variable-length field before the arrays (a string, a
     * decimal too wide for 8 bytes, another array), none where only fixed-width fields come first.
     */
    @Test
    void theFieldBeforeTheArraysThatKeepsRowsFromBeingBuiltInPlace() {
        DataType floats = DataTypes.createArrayType(DataTypes.FloatType, false);
        StructType idFeaturesName = new StructType().add("id", DataTypes.LongType).add("features", floats).add("name", DataTypes.StringType);
        assertThat(OutputRows.inPlaceObstacle(idFeaturesName, new int[] {1})).isNull();
        StructType idNameFeatures = new StructType().add("id", DataTypes.LongType).add("name", DataTypes.StringType).add("features", floats);
        assertThat(OutputRows.inPlaceObstacle(idNameFeatures, new int[] {2}).name()).isEqualTo("name");
        StructType twoArrays = new StructType().add("a", floats).add("b", floats).add("s", DataTypes.StringType).add("c", floats);
        assertThat(OutputRows.inPlaceObstacle(twoArrays, new int[] {1, 0})).isNull();
        assertThat(OutputRows.inPlaceObstacle(twoArrays, new int[] {0, 3}).name()).as("b is an array, but not an input").isEqualTo("b");
        StructType wide = new StructType().add("d", DataTypes.createDecimalType(30, 5)).add("features", floats);
        assertThat(OutputRows.inPlaceObstacle(wide, new int[] {1}).name()).isEqualTo("d");
        StructType narrow = new StructType().add("d", DataTypes.createDecimalType(10, 2)).add("t", DataTypes.TimestampType).add("features", floats);
        assertThat(OutputRows.inPlaceObstacle(narrow, new int[] {2})).isNull();
    }

    /** {@code fields} columns c0, c1, ... of kinds drawn from {@link #KINDS}, all nullable. */
    private static StructType randomSchema(int fields, Random random) {
        StructType schema = new StructType();
        for (int i = 0; i < fields; i++) {
            schema = schema.add("c" + i, KINDS[random.nextInt(KINDS.length)], true);
        }
        return schema;
    }

    private static int indexOf(int[] values, int value) {
        return java.util.stream.IntStream.range(0, values.length).filter(k -> values[k] == value).findFirst().orElse(-1);
    }

    /** {@code input} with each of {@code deferred} made an {@code array<float>}, its width drawn into {@code widths}. */
    private static StructType withFloatArrays(StructType input, int[] deferred, int[] widths, Random random) {
        StructType in = new StructType();
        for (int i = 0; i < input.size(); i++) {
            int j = indexOf(deferred, i);
            in = in.add("c" + i, j >= 0 ? DataTypes.createArrayType(DataTypes.FloatType, false) : input.fields()[i].dataType(), true);
            if (j >= 0) {
                widths[j] = new int[] {1, 3, 64, 65, 512}[random.nextInt(5)];
            }
        }
        return in;
    }

    /** The output schema: one or two prediction columns (widths drawn into {@code widths}, 0 for a scalar), the error column. */
    private static StructType withPredictions(StructType in, List<Integer> widths, boolean errorColumn, Random random) {
        StructType output = in;
        int predictions = 1 + random.nextInt(2);
        for (int k = 0; k < predictions; k++) {
            int width = new int[] {0, 2, 3}[random.nextInt(3)];
            widths.add(width);
            output = output.add("p" + k, width == 0 ? DataTypes.FloatType : DataTypes.createArrayType(DataTypes.FloatType, false), true);
        }
        return errorColumn ? output.add("error", DataTypes.StringType, true) : output;
    }

    /** Random predictions written into row {@code r}; returns them, with a null error, as the expected row's values. */
    private static Object[] putRandomPredictions(OutputRows rows, int r, List<Integer> widths, boolean errorColumn, Random random) {
        Object[] values = new Object[widths.size() + (errorColumn ? 1 : 0)];
        for (int k = 0; k < widths.size(); k++) {
            if (widths.get(k) > 0) {
                float[] floats = new float[widths.get(k)];
                for (int i = 0; i < floats.length; i++) {
                    floats[i] = random.nextFloat();
                }
                rows.putFloats(r, k, floats);
                values[k] = UnsafeArrayData.fromPrimitiveArray(floats);
            } else {
                float value = random.nextFloat();
                rows.putFloat(r, k, value);
                values[k] = value;
            }
        }
        return values;
    }

    private static InternalRow randomRow(StructType schema, Random random) {
        GenericInternalRow row = new GenericInternalRow(schema.size());
        for (int i = 0; i < schema.size(); i++) {
            if (random.nextInt(5) == 0) {
                continue;
            }
            row.update(i, value(schema.fields()[i].dataType(), random));
        }
        return row;
    }

    private static Object value(DataType type, Random random) {
        if (type.equals(DataTypes.LongType)) {
            return random.nextLong();
        } else if (type.equals(DataTypes.IntegerType)) {
            return random.nextInt();
        } else if (type.equals(DataTypes.BooleanType)) {
            return random.nextBoolean();
        } else if (type.equals(DataTypes.DoubleType)) {
            return random.nextGaussian();
        } else if (type.equals(DataTypes.StringType)) {
            return UTF8String.fromString("s".repeat(random.nextInt(30)));
        } else if (type.equals(DataTypes.BinaryType)) {
            byte[] bytes = new byte[random.nextInt(20)];
            random.nextBytes(bytes);
            return bytes;
        } else if (type.equals(DataTypes.createDecimalType(10, 2))) {
            return Decimal.apply(BigDecimal.valueOf(random.nextInt(1_000_000), 2));
        } else if (type.equals(DataTypes.createDecimalType(30, 5))) {
            return Decimal.apply(new BigDecimal(new java.math.BigInteger(90, random), 5));
        } else if (type instanceof StructType) {
            return new GenericInternalRow(new Object[] {random.nextInt(), UTF8String.fromString("x".repeat(random.nextInt(12)))});
        } else if (type instanceof org.apache.spark.sql.types.MapType) {
            return new ArrayBasedMapData(new GenericArrayData(new Object[] {UTF8String.fromString("k")}), new GenericArrayData(new Object[] {random.nextInt()}));
        }
        float[] values = new float[random.nextInt(600)];
        for (int i = 0; i < values.length; i++) {
            values[i] = random.nextFloat();
        }
        return UnsafeArrayData.fromPrimitiveArray(values);
    }
}
