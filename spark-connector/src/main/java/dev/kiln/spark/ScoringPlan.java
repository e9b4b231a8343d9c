package dev.kiln.spark;

import java.io.Serializable;
import java.util.List;

/**
 * Everything an executor needs to score a partition, fixed on the driver: the model handle, one input adapter per
 * graph input, the prediction columns, batch size, device setting, what to do with bad rows, where the key column is,
 * and the metrics to update.
 *
 * @param keyOrdinal ordinal of a column whose value names a failing row in messages, or -1
 */
record ScoringPlan(ModelHandle model, List<InputAdapter> inputs, List<OutputColumn> outputs, int batchSize, String device,
                   boolean failOnBadRow, String keyColumn, int keyOrdinal, org.apache.spark.sql.types.DataType keyType,
                   KilnMetrics metrics) implements Serializable {
}
