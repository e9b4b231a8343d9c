package dev.kiln.spark;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;
import dev.kiln.engine.backend.cpu.CpuBackend;
import dev.kiln.engine.exec.CompiledModel;
import dev.kiln.engine.exec.DeviceQueue;
import dev.kiln.engine.exec.Executor;
import dev.kiln.engine.exec.QueuedExecutor;
import dev.kiln.engine.ir.Signature;
import dev.kiln.format.kiln.KilnFormat;
import org.apache.spark.SparkEnv;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedDeque;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The JVM-wide model cache of an executor: each model (by content hash and device) is read and compiled once per
 * executor JVM and shared by every task thread; each task borrows an executor from the model's pool and returns it
 * (on a GPU, a view that feeds the device's one queue).
 * Models are closed at JVM shutdown. Also sets the BLAS threads per task once per JVM.
 */
public final class ExecutorModels {
    private static final Logger LOG = LoggerFactory.getLogger(ExecutorModels.class);
    private static final Map<String, Cached> CACHE = new ConcurrentHashMap<>();
    private static final AtomicInteger LOADS = new AtomicInteger();
    private static final AtomicBoolean THREADS_SET = new AtomicBoolean();

    static {
        Runtime.getRuntime().addShutdownHook(new Thread(ExecutorModels::closeAll, "kiln-models-shutdown"));
    }

    private ExecutorModels() {
    }

    /**
     * A model with its pool of executors. On a GPU the pool holds light {@link QueuedExecutor}s that all feed the
     * device's one {@link DeviceQueue} (created with the first lease), so every task thread shares one device
     * executor and the GPU is fed back to back; on the CPU each task computes on its own pooled executor.
     */
    private static final class Cached {
        final CompiledModel model;
        final Device device;
        final ConcurrentLinkedDeque<Executor> pool = new ConcurrentLinkedDeque<>();
        /** For a task with several GPUs: the models of each device, whose queues this entry's executors feed. */
        final java.util.List<Cached> parts;
        DeviceQueue queue;

        Cached(CompiledModel model, Device device) {
            this(model, device, null);
        }

        Cached(CompiledModel model, Device device, java.util.List<Cached> parts) {
            this.model = model;
            this.device = device;
            this.parts = parts;
        }

        CompiledModel model() {
            return model;
        }

        ConcurrentLinkedDeque<Executor> pool() {
            return pool;
        }

        Executor newExecutor(int capacity) {
            if (parts != null) {
                java.util.List<dev.kiln.engine.exec.QueuedExecutor> queued = new java.util.ArrayList<>();
                int share = (capacity + parts.size() - 1) / parts.size();
                for (Cached part : parts) {
                    queued.add((dev.kiln.engine.exec.QueuedExecutor) part.newExecutor(share));
                }
                return new dev.kiln.engine.exec.SplitExecutor(queued, widths(model.signature().inputs()), widths(model.signature().outputs()), capacity);
            }
            if (!device.isGpu()) {
                return model.newExecutor(capacity);
            }
            int[] in = widths(model.signature().inputs());
            int[] out = widths(model.signature().outputs());
            synchronized (this) {
                if (queue == null) {
                    // Two executors (two sets of staging buffers): one group is copied in while the other runs.
                    java.util.List<Executor> executors = new java.util.ArrayList<>();
                    executors.add(model.newExecutor(capacity));
                    try {
                        executors.add(model.newExecutor(capacity));
                    } catch (KilnException e) {
                        if (e.code() != ErrorCode.DEVICE_OUT_OF_MEMORY) {
                            executors.get(0).close();
                            throw e;
                        }
                    }
                    queue = new DeviceQueue(device.toString(), executors, in, out);
                }
            }
            return new QueuedExecutor(queue, model, in, out, capacity);
        }

        private static int[] widths(java.util.List<Signature.Spec> specs) {
            int[] w = new int[specs.size()];
            for (int i = 0; i < w.length; i++) {
                w[i] = KilnModel.rowWidth(specs.get(i), "value");
            }
            return w;
        }

        synchronized void close() {
            Executor e;
            while ((e = pool.pollFirst()) != null) {
                e.close();
            }
            if (parts != null) {
                return;  // the model and the queues belong to the devices' own entries
            }
            if (queue != null) {
                queue.close();
            }
            model.close();
        }
    }

    /** An executor borrowed for one task; closing returns it to the pool (inputs unbound). */
    public static final class Lease implements AutoCloseable {
        private final Cached cached;
        private final Executor executor;
        private final java.util.concurrent.atomic.AtomicBoolean returned = new java.util.concurrent.atomic.AtomicBoolean();

        private Lease(Cached cached, Executor executor) {
            this.cached = cached;
            this.executor = executor;
        }

        public Executor executor() {
            return executor;
        }

        public CompiledModel model() {
            return cached.model();
        }

        @Override
        public void close() {
            if (returned.compareAndSet(false, true)) {
                try {
                    executor.unbindInputs();
                } catch (RuntimeException e) {
                    executor.close();
                    throw e;
                }
                cached.pool().addFirst(executor);
            }
        }
    }

    /**
     * Borrows an executor of {@code handle}'s model over {@code devices} (a task's GPUs): one device is
     * {@link #acquire(ModelHandle, Device, int)}; several give an executor that splits every batch across their
     * queues at once. The model is still loaded once per device and JVM.
     */
    public static Lease acquire(ModelHandle handle, java.util.List<Device> devices, int capacity) {
        if (devices.size() == 1) {
            return acquire(handle, devices.get(0), capacity);
        }
        configureThreads();
        java.util.List<Cached> parts = new java.util.ArrayList<>();
        StringBuilder key = new StringBuilder(handle.contentHash()).append('@');
        for (Device device : devices) {
            if (!device.isGpu()) {
                throw KilnException.of(ErrorCode.INVALID_ARGUMENT, "Only GPUs can be combined in one task; got %s", devices);
            }
            parts.add(CACHE.computeIfAbsent(handle.contentHash() + "@" + device, k -> load(handle, device)));
            key.append(device).append('+');
        }
        Cached cached = CACHE.computeIfAbsent(key.toString(), k -> new Cached(parts.get(0).model(), null, java.util.List.copyOf(parts)));
        return lease(cached, capacity);
    }

    /** Borrows an executor of {@code handle}'s model on {@code device} with room for {@code capacity} rows. */
    public static Lease acquire(ModelHandle handle, Device device, int capacity) {
        configureThreads();
        Cached cached = CACHE.computeIfAbsent(handle.contentHash() + "@" + device, key -> load(handle, device));
        return lease(cached, capacity);
    }

    /** A pooled executor of {@code cached} (or a new one) with room for {@code capacity} rows. */
    private static Lease lease(Cached cached, int capacity) {
        Executor executor = cached.pool().pollFirst();
        if (executor == null) {
            executor = cached.newExecutor(capacity);
        }
        try {
            executor.ensureCapacity(capacity);
        } catch (RuntimeException e) {
            executor.close();
            throw e;
        }
        return new Lease(cached, executor);
    }

    private static Cached load(ModelHandle handle, Device device) {
        long start = System.nanoTime();
        KilnFormat.ModelFile file = handle.read();
        CompiledModel model = new CompiledModel(file.graph(), file.passes(), Backends.forDevice(device));
        LOADS.incrementAndGet();
        LOG.info("Loaded model {} ({}) on {} in {} ms ({})", file.name(), handle.contentHash().substring(0, 12), device,
                (System.nanoTime() - start) / 1_000_000, handle.isBroadcast() ? "broadcast" : "from " + handle.uri());
        return new Cached(model, device);
    }

    /**
     * BLAS threads per task = executor cores ÷ concurrent tasks (that is, spark.task.cpus), unless the user chose:
     * {@code spark.kiln.threads}, or OMP_NUM_THREADS in the executor's environment.
     */
    static void configureThreads() {
        if (!THREADS_SET.compareAndSet(false, true)) {
            return;
        }
        int threads;
        SparkEnv env = SparkEnv.get();
        if (env != null && env.conf().contains("spark.kiln.threads")) {
            threads = env.conf().getInt("spark.kiln.threads", 1);
        } else if (leadingInt(System.getenv("OMP_NUM_THREADS")) > 0) {
            threads = leadingInt(System.getenv("OMP_NUM_THREADS"));
        } else {
            threads = env == null ? 1 : Math.max(1, env.conf().getInt("spark.task.cpus", 1));
        }
        CpuBackend.setBlasThreads(threads);
        LOG.info("Kiln uses {} BLAS thread(s) per task", threads);
        String warning = waitPolicyWarning(threads, System.getenv("OMP_WAIT_POLICY"));
        if (warning != null) {
            LOG.warn(warning);
        }
    }

    /**
     * A warning when tasks run several OpenMP threads that will spin-wait between calls: the policy is read when the
     * JVM starts, so Kiln cannot change it for a running executor, only say how to (docs/TUNING.md). Null when fine.
     */
    static String waitPolicyWarning(int threads, String policy) {
        if (threads <= 1 || (policy != null && !policy.isBlank())) {
            return null;
        }
        return "Kiln runs " + threads + " OpenMP threads per task but OMP_WAIT_POLICY is not set for this executor: idle OpenMP threads "
                + "spin-wait and take cores from the other tasks (measured 5x slower). Set spark.executorEnv.OMP_WAIT_POLICY=PASSIVE "
                + "(bin/kiln score sets it by default; docs/TUNING.md)";
    }

    /** The first number of an OMP_NUM_THREADS value ("4", "4,2"), or -1. */
    static int leadingInt(String value) {
        if (value == null) {
            return -1;
        }
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("^\\s*(\\d+)").matcher(value);
        return m.find() ? Integer.parseInt(m.group(1)) : -1;
    }

    /** How many models this JVM has loaded (tests prove one load per executor JVM). */
    public static int loadCount() {
        return LOADS.get();
    }

    /** Closes every cached model and its executors (at JVM shutdown; tests call it to check for leaks). */
    public static synchronized void closeAll() {
        for (Cached cached : CACHE.values()) {
            cached.close();
        }
        CACHE.clear();
    }
}
