package dev.kiln.spark;

import org.apache.spark.SparkContext;
import org.apache.spark.util.LongAccumulator;

import java.io.Serializable;

/**
 * Spark accumulators of one scoring transform: rows, batches, rows refused (bad input), and nanoseconds spent
 * converting (rows to Arrow batches and predictions back to rows) versus computing (the compiled graph).
 */
public final class KilnMetrics implements Serializable {
    private static final long serialVersionUID = 1L;

    private final LongAccumulator rows;
    private final LongAccumulator batches;
    private final LongAccumulator badRows;
    private final LongAccumulator convertNanos;
    private final LongAccumulator computeNanos;

    public KilnMetrics(SparkContext sc, String name) {
        this.rows = sc.longAccumulator("kiln." + name + ".rows");
        this.batches = sc.longAccumulator("kiln." + name + ".batches");
        this.badRows = sc.longAccumulator("kiln." + name + ".badRows");
        this.convertNanos = sc.longAccumulator("kiln." + name + ".convertNanos");
        this.computeNanos = sc.longAccumulator("kiln." + name + ".computeNanos");
    }

    void add(long rowCount, long badRowCount, long convert, long compute) {
        rows.add(rowCount);
        batches.add(1);
        badRows.add(badRowCount);
        convertNanos.add(convert);
        computeNanos.add(compute);
    }

    public long rows() {
        return rows.value();
    }

    public long batches() {
        return batches.value();
    }

    public long badRows() {
        return badRows.value();
    }

    public long convertNanos() {
        return convertNanos.value();
    }

    public long computeNanos() {
        return computeNanos.value();
    }

    /** One line for logs: rows, batches, bad rows, time converting versus computing (summed over tasks). */
    public String summary() {
        double convert = convertNanos() / 1e9;
        double compute = computeNanos() / 1e9;
        double total = Math.max(1e-9, convert + compute);
        return String.format("Kiln scored %,d rows in %,d batches (%,d refused): converting %.2f s (%.0f%%), computing %.2f s (%.0f%%), task time summed",
                rows(), batches(), badRows(), convert, 100 * convert / total, compute, 100 * compute / total);
    }
}
