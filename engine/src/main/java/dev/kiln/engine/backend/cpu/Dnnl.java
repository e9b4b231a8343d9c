package dev.kiln.engine.backend.cpu;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;
import org.bytedeco.dnnl.dnnl_engine;
import org.bytedeco.dnnl.dnnl_memory;
import org.bytedeco.dnnl.dnnl_memory_desc;
import org.bytedeco.javacpp.Pointer;
import org.nd4j.nativeblas.NativeOpsHolder;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.Locale;

import static org.bytedeco.dnnl.global.dnnl.dnnl_cpu;
import static org.bytedeco.dnnl.global.dnnl.dnnl_engine_create;
import static org.bytedeco.dnnl.global.dnnl.dnnl_f32;
import static org.bytedeco.dnnl.global.dnnl.dnnl_memory_create;
import static org.bytedeco.dnnl.global.dnnl.dnnl_memory_desc_create_with_strides;
import static org.bytedeco.dnnl.global.dnnl.dnnl_memory_desc_create_with_tag;
import static org.bytedeco.dnnl.global.dnnl.dnnl_memory_desc_destroy;
import static org.bytedeco.dnnl.global.dnnl.dnnl_memory_destroy;
import static org.bytedeco.dnnl.global.dnnl.dnnl_version;

/**
 * oneDNN (JavaCPP's {@code dnnl} preset): the CPU backend's GEMM library for dense layers of more than one row. On
 * this project's CPU (Zen 4, AVX-512) its JIT matmul runs the seed MLP's layers at 105-114 GFLOP/s against
 * OpenBLAS's 93-103 (BENCHMARKS.md), and it adds the bias while the output tile is still in registers.
 *
 * <p>Which library runs the dense layers is chosen once per JVM by the system property {@code kiln.cpu.gemm}:
 * {@code auto} (default: oneDNN when it loads on this platform, OpenBLAS otherwise, with one log line saying why),
 * {@code onednn} (fail when it cannot load) or {@code openblas}. A single row always goes through OpenBLAS's sgemv,
 * which is faster at batch 1 (7.8 us against 10 us for the seed MLP).
 *
 * <p>Threads: oneDNN runs on OpenMP (the one libgomp in the process, ND4J's), with {@code OMP_NUM_THREADS} threads
 * per call by default. Once {@link CpuBackend#setBlasThreads} has been called (the benchmarks, and Spark executors:
 * cores per task), every oneDNN call runs with that many threads instead: OpenMP's thread count belongs to each
 * calling thread, so each worker thread sets its own before its first call (measured: a 2048-cube sgemm at 214
 * GFLOP/s on 2 threads, 108 after setting 1, and 214 again on a fresh thread).
 */
final class Dnnl {
    private static final Logger LOG = LoggerFactory.getLogger(Dnnl.class);
    static final String PROPERTY = "kiln.cpu.gemm";

    private static final Object LOCK = new Object();
    private static volatile Boolean enabled;
    private static dnnl_engine engine;
    private static String description = "not loaded";
    /** Threads per oneDNN call, or -1 to leave OpenMP's default (OMP_NUM_THREADS). */
    private static volatile int threads = -1;
    /** What this thread last set OpenMP's thread count to (-1: never). */
    private static final ThreadLocal<int[]> THREAD_SETTING = ThreadLocal.withInitial(() -> new int[] {-1});

    private Dnnl() {
    }

    /** Whether dense layers run through oneDNN in this JVM (decided, and oneDNN loaded, on the first call). */
    static boolean enabled() {
        Boolean e = enabled;
        if (e == null) {
            synchronized (LOCK) {
                if (enabled == null) {
                    enabled = decide(System.getProperty(PROPERTY, "auto"));
                }
                e = enabled;
            }
        }
        return e;
    }

    /** Which GEMM library the dense layers use, and its version: for benchmark headers and logs. */
    static String description() {
        enabled();
        return description;
    }

    /** Loads oneDNN when {@code value} asks for it (auto, onednn) and says whether dense layers use it. */
    static boolean decide(String value) {
        String choice = value.trim().toLowerCase(Locale.ROOT);
        switch (choice) {
            case "openblas":
                description = "OpenBLAS (" + PROPERTY + "=openblas)";
                return false;
            case "onednn":
            case "auto":
                try {
                    dnnl_engine e = new dnnl_engine();
                    check(dnnl_engine_create(e, dnnl_cpu, 0), "creating oneDNN's CPU engine");
                    engine = e;
                    var v = dnnl_version();
                    description = String.format("oneDNN %d.%d.%d", v.major(), v.minor(), v.patch());
                    return true;
                } catch (Throwable t) {
                    if (choice.equals("onednn")) {
                        throw KilnException.of(ErrorCode.BACKEND_UNAVAILABLE,
                                "%s=onednn but oneDNN does not load on this platform (%s/%s): %s", PROPERTY,
                                System.getProperty("os.name"), System.getProperty("os.arch"), t);
                    }
                    description = "OpenBLAS (oneDNN unavailable: " + t + ")";
                    LOG.warn("oneDNN does not load on this platform ({}); dense layers use OpenBLAS", t.toString());
                    return false;
                }
            default:
                throw KilnException.of(ErrorCode.INVALID_ARGUMENT, "%s must be auto, onednn or openblas, not '%s'", PROPERTY, choice);
        }
    }

    /** Every later oneDNN call runs with {@code count} threads (each calling thread applies it before its next call). */
    static void setThreads(int count) {
        threads = Math.max(1, count);
    }

    /** Applies {@link #setThreads} to the calling thread's OpenMP setting when it differs; cheap when it does not. */
    static void applyThreads() {
        int wanted = threads;
        if (wanted > 0) {
            int[] mine = THREAD_SETTING.get();
            if (mine[0] != wanted) {
                NativeOpsHolder.getInstance().getDeviceNativeOps().setOmpNumThreads(wanted);
                mine[0] = wanted;
            }
        }
    }

    static dnnl_engine engine() {
        if (!enabled()) {
            throw new IllegalStateException("oneDNN is not enabled");
        }
        return engine;
    }

    /** Throws when a oneDNN call did not return dnnl_success, naming the call and the status. */
    static void check(int status, String what) {
        if (status != 0) {
            throw failure(status, what);
        }
    }

    /** As {@link #check(int, String)}, building the description only on failure (for per-batch calls). */
    static void check(int status, java.util.function.Supplier<String> what) {
        if (status != 0) {
            throw failure(status, what.get());
        }
    }

    private static KilnException failure(int status, String what) {
        // Out of memory is what a smaller batch may fix; everything else is oneDNN refusing or failing the operation.
        ErrorCode code = status == 1 ? ErrorCode.DEVICE_OUT_OF_MEMORY : ErrorCode.BACKEND_UNAVAILABLE;
        return KilnException.of(code, "oneDNN failed %s: %s (status %d)", what, statusName(status), status);
    }

    private static String statusName(int status) {
        switch (status) {
            case 1: return "out_of_memory";
            case 2: return "invalid_arguments";
            case 3: return "unimplemented (no oneDNN implementation for these shapes and layouts)";
            case 4: return "last_impl_reached";
            case 5: return "runtime_error";
            case 6: return "not_required";
            case 7: return "invalid_graph";
            case 8: return "invalid_graph_op";
            case 9: return "invalid_shape";
            case 10: return "invalid_data_type";
            default: return "unknown status";
        }
    }

    /** A plain f32 memory descriptor with the given dims and layout tag (dnnl_ab, dnnl_ba, ...). The caller destroys it. */
    static dnnl_memory_desc desc(long[] dims, int tag) {
        dnnl_memory_desc d = new dnnl_memory_desc();
        check(dnnl_memory_desc_create_with_tag(d, dims.length, dims, dnnl_f32, tag), () -> "creating a memory descriptor for " + java.util.Arrays.toString(dims));
        return d;
    }

    /** A plain f32 memory descriptor with explicit strides (in elements). The caller destroys it. */
    static dnnl_memory_desc stridedDesc(long[] dims, long[] strides) {
        dnnl_memory_desc d = new dnnl_memory_desc();
        check(dnnl_memory_desc_create_with_strides(d, dims.length, dims, dnnl_f32, strides),
                () -> "creating a memory descriptor for " + java.util.Arrays.toString(dims) + " with strides " + java.util.Arrays.toString(strides));
        return d;
    }

    /** A memory object over the caller's buffer (no copy, no allocation of data). The caller destroys it. */
    static dnnl_memory memory(dnnl_memory_desc desc, Pointer data) {
        dnnl_memory m = new dnnl_memory();
        check(dnnl_memory_create(m, desc, engine(), data), "creating a memory object");
        return m;
    }

    static void destroy(dnnl_memory_desc desc) {
        if (desc != null && !desc.isNull()) {
            dnnl_memory_desc_destroy(desc);
        }
    }

    static void destroy(dnnl_memory memory) {
        if (memory != null && !memory.isNull()) {
            dnnl_memory_destroy(memory);
        }
    }
}
