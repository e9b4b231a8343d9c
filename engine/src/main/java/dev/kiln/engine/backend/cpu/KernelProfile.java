package dev.kiln.engine.backend.cpu;

import dev.kiln.engine.backend.Kernel;
import dev.kiln.engine.ir.Node;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.LongAdder;

/**
 * Where a compiled model's time goes, kernel by kernel: when enabled (system property {@code kiln.profile=true}, or
 * {@code bin/kiln bench --profile}) before executors are built, every kernel of their schedules is timed and the
 * totals are kept per op and node. Off by default: timing costs two clock reads per kernel call.
 */
public final class KernelProfile {
    private static volatile boolean enabled = Boolean.getBoolean("kiln.profile");
    private static final Map<String, LongAdder> NANOS = new ConcurrentHashMap<>();
    private static final Map<String, LongAdder> CALLS = new ConcurrentHashMap<>();

    private KernelProfile() {
    }

    public static void enable() {
        enabled = true;
    }

    public static boolean enabled() {
        return enabled;
    }

    public static void reset() {
        NANOS.clear();
        CALLS.clear();
    }

    static Kernel wrap(Node node, Kernel kernel) {
        if (!enabled) {
            return kernel;
        }
        return wrap(node.op() + " " + (node.name() == null ? "" : node.name()) + " (" + kernel.getClass().getSimpleName() + ")", kernel);
    }

    /** Times {@code kernel} under {@code label} (a kernel that runs several nodes names them itself). */
    static Kernel wrap(String label, Kernel kernel) {
        if (!enabled) {
            return kernel;
        }
        LongAdder nanos = NANOS.computeIfAbsent(label, k -> new LongAdder());
        LongAdder calls = CALLS.computeIfAbsent(label, k -> new LongAdder());
        return new Kernel() {
            @Override
            public void run(long batch) {
                long start = System.nanoTime();
                kernel.run(batch);
                nanos.add(System.nanoTime() - start);
                calls.increment();
            }

            @Override
            public void close() {
                kernel.close();
            }
        };
    }

    /** One line per kernel, slowest first: total milliseconds, share, calls. */
    public static String report() {
        long total = NANOS.values().stream().mapToLong(LongAdder::sum).sum();
        StringBuilder sb = new StringBuilder(String.format("%10s %6s %8s  kernel%n", "ms", "share", "calls"));
        NANOS.entrySet().stream().sorted((a, b) -> Long.compare(b.getValue().sum(), a.getValue().sum())).forEach(e -> sb.append(String.format(
                "%10.1f %5.1f%% %8d  %s%n", e.getValue().sum() / 1e6, 100.0 * e.getValue().sum() / Math.max(1, total), CALLS.get(e.getKey()).sum(), e.getKey())));
        return sb.toString();
    }
}
