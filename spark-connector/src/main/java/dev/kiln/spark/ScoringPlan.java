package dev.kiln.spark;

import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.StructType;

import java.io.Serializable;
import java.util.List;

/**
 * Everything an executor needs to score a partition, fixed on the driver: the model handle, one input adapter per
 * graph input, the prediction columns, batch size, device setting, what to do with bad rows, where the key column is,
 * the metrics to update, and the schemas of the rows read and written.
 *
 * @param keyOrdinal   ordinal of a column whose value names a failing row in messages, or -1
 * @param inputSchema  the rows read: the input DataFrame's columns
 * @param outputSchema the rows written: the input's columns, the prediction columns, then the error column if any
 */
record ScoringPlan(ModelHandle model, List<InputAdapter> inputs, List<OutputColumn> outputs, int batchSize, String device,
                   boolean failOnBadRow, String keyColumn, int keyOrdinal, DataType keyType, KilnMetrics metrics,
                   StructType inputSchema, StructType outputSchema) implements Serializable {
}
