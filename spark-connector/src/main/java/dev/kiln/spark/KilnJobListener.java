package dev.kiln.spark;

import org.apache.spark.SparkContext;
import org.apache.spark.scheduler.SparkListener;
import org.apache.spark.scheduler.SparkListenerJobEnd;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/** Logs one summary line per job for each scoring transform whose metrics moved during it. */
final class KilnJobListener extends SparkListener {
    private static final Logger LOG = LoggerFactory.getLogger(KilnJobListener.class);
    private static final Map<SparkContext, KilnJobListener> LISTENERS = new ConcurrentHashMap<>();

    private final Map<KilnMetrics, Long> watched = new ConcurrentHashMap<>();

    static void watch(SparkContext sc, KilnMetrics metrics) {
        KilnJobListener listener = LISTENERS.computeIfAbsent(sc, context -> {
            KilnJobListener l = new KilnJobListener();
            context.addSparkListener(l);
            return l;
        });
        listener.watched.put(metrics, 0L);
    }

    @Override
    public void onJobEnd(SparkListenerJobEnd jobEnd) {
        for (Map.Entry<KilnMetrics, Long> e : watched.entrySet()) {
            long rows = e.getKey().rows();
            if (rows != e.getValue()) {
                e.setValue(rows);
                LOG.info("Job {}: {}", jobEnd.jobId(), e.getKey().summary());
            }
        }
    }
}
