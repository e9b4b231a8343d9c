package dev.kiln.spark;

import org.apache.spark.SparkContext;
import org.apache.spark.scheduler.SparkListener;
import org.apache.spark.scheduler.SparkListenerApplicationEnd;
import org.apache.spark.scheduler.SparkListenerJobEnd;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.WeakHashMap;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Logs one summary line per job for each scoring transform whose metrics moved during it. A transform's metrics are
 * held weakly: once nothing refers to its DataFrame or model any more, they leave the listener (a long-lived session
 * that scores in a loop does not accumulate them); the listener itself leaves when its application ends.
 */
final class KilnJobListener extends SparkListener {
    private static final Logger LOG = LoggerFactory.getLogger(KilnJobListener.class);
    private static final Map<SparkContext, KilnJobListener> LISTENERS = new ConcurrentHashMap<>();

    private final SparkContext context;
    /** Metrics watched, with the row count last logged; identity keys, weakly held. */
    private final Map<KilnMetrics, Long> watched = Collections.synchronizedMap(new WeakHashMap<>());

    private KilnJobListener(SparkContext context) {
        this.context = context;
    }

    static void watch(SparkContext sc, KilnMetrics metrics) {
        listener(sc).watched.put(metrics, 0L);
    }

    static KilnJobListener listener(SparkContext sc) {
        return LISTENERS.computeIfAbsent(sc, context -> {
            KilnJobListener l = new KilnJobListener(context);
            context.addSparkListener(l);
            return l;
        });
    }

    /** How many transforms' metrics are still watched (for tests). */
    int watchedCount() {
        return watched.size();
    }

    /** Whether a listener is registered for {@code sc} (for tests). */
    static boolean registered(SparkContext sc) {
        return LISTENERS.containsKey(sc);
    }

    @Override
    public void onJobEnd(SparkListenerJobEnd jobEnd) {
        for (String line : summaries(jobEnd.jobId())) {
            LOG.info(line);
        }
    }

    /**
     * The lines to log at the end of job {@code jobId}: one per watched transform whose row count moved since its last
     * line. The row count logged is written back into the map's own entry: the entries {@code WeakHashMap} copies out
     * ({@code entrySet().toArray()}) do not write through, and reading from such a copy logged every watched
     * transform again at every job.
     */
    List<String> summaries(int jobId) {
        List<String> lines = new ArrayList<>();
        synchronized (watched) {
            for (Map.Entry<KilnMetrics, Long> e : watched.entrySet()) {
                KilnMetrics metrics = e.getKey();
                if (metrics == null) {
                    continue;
                }
                long rows = metrics.rows();
                if (rows != e.getValue()) {
                    e.setValue(rows);
                    lines.add("Job " + jobId + ": " + metrics.summary());
                }
            }
        }
        return lines;
    }

    @Override
    public void onApplicationEnd(SparkListenerApplicationEnd end) {
        LISTENERS.remove(context, this);
        watched.clear();
    }
}
