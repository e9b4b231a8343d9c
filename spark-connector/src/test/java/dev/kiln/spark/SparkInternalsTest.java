package dev.kiln.spark;

import org.apache.spark.sql.catalyst.expressions.UnsafeArrayData;
import org.apache.spark.sql.catalyst.util.GenericArrayData;
import org.apache.spark.unsafe.Platform;
import org.junit.jupiter.api.Test;


import static org.assertj.core.api.Assertions.assertThat;

/**
 * Fails loudly when a Spark upgrade changes the internal APIs Kiln relies on (SparkInternals): then update that class,
 * or Kiln falls back and gets slower.
 */
class SparkInternalsTest {
    @Test
    void theInternalApisKilnUsesExist() {
        assertThat(SparkInternals.available())
                .as("Spark internals used by SparkInternals (classic.SparkSession.internalCreateDataFrame, experimental().extraStrategies and extensions(), "
                        + "classic.Dataset.queryExecution and ofRows, DataTypeUtils.toAttributes, the LogicalPlan and SparkPlan classes KilnScore "
                        + "and KilnScoreExec extend, UnsafeArrayData layout) changed in this Spark version")
                .isTrue();
    }

    @Test
    void copiesUnsafeArrayBodiesAndRefusesNulls() {
        long address = Platform.allocateMemory(16);
        try {
            assertThat(SparkInternals.copyFloats(UnsafeArrayData.fromPrimitiveArray(new float[] {1.5f, -2f, 3f, 4.25f}), 4, address)).isTrue();
            assertThat(new float[] {Platform.getFloat(null, address), Platform.getFloat(null, address + 4), Platform.getFloat(null, address + 8),
                    Platform.getFloat(null, address + 12)}).containsExactly(1.5f, -2f, 3f, 4.25f);
            UnsafeArrayData withNull = UnsafeArrayData.fromPrimitiveArray(new float[] {1f, 2f});
            withNull.setNullAt(1);
            assertThat(SparkInternals.copyFloats(withNull, 2, address)).isFalse();
            assertThat(SparkInternals.copyFloats(new GenericArrayData(new Object[] {1f, null}), 2, address)).isFalse();
            assertThat(SparkInternals.copyFloats(new GenericArrayData(new Object[] {7f, 8f}), 2, address)).isTrue();
            assertThat(Platform.getFloat(null, address + 4)).isEqualTo(8f);
        } finally {
            Platform.freeMemory(address);
        }
    }
}
