package dev.kiln.engine.backend.cuda;

import dev.kiln.engine.backend.Backend;
import dev.kiln.engine.exec.CompiledModel;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Kiln's GPU backend for Ampere and Hopper (compute capability 8.0 and up) on CUDA 12/13: weights uploaded once per
 * device and shared by every executor, dense layers as cuBLASLt GEMMs with bias and relu epilogues, every other op as
 * one of Kiln's kernels ({@code kernels.cu}, compiled by NVRTC for the device), page-locked staging and two streams per
 * executor so copies overlap compute. Needs the NVIDIA driver and the CUDA 12/13 runtime, NVRTC and cuBLASLt libraries
 * (a CUDA toolkit, or {@code org.bytedeco:cuda-redist} for all but cuBLASLt, in which case GEMMs use Kiln's own
 * kernel); not ND4J. Ops without a GPU kernel are refused when the model loads, naming the node.
 */
public final class CudaBackend implements Backend {
    private static final Map<Integer, CudaBackend> DEVICES = new ConcurrentHashMap<>();

    private final String name;
    private final CudaApi api;

    /** A backend on {@code api} (tests give an emulated device). */
    public CudaBackend(String name, CudaApi api) {
        this.name = name;
        this.api = api;
    }

    /**
     * The backend of GPU {@code ordinal} of this JVM, opened on first use and shared afterwards (one CUDA context,
     * kernel module and cuBLASLt handle per device). This is the constructor Spark's executors call by name
     * ({@code kiln.backend.cuda}).
     */
    public CudaBackend(int ordinal) {
        CudaBackend shared = forDevice(ordinal);
        this.name = shared.name;
        this.api = shared.api;
    }

    public static CudaBackend forDevice(int ordinal) {
        return DEVICES.computeIfAbsent(ordinal, o -> new CudaBackend("cuda:" + o, JavaCppCudaApi.open(o)));
    }

    @Override
    public String name() {
        return name;
    }

    /** The GPU in words. */
    public String device() {
        return api.describe();
    }

    @Override
    public LoadedModel load(CompiledModel model) {
        return new CudaLoadedModel(model, api);
    }

    /** Refuses, before any device work, a graph this backend cannot run (an op without a GPU kernel, a batch axis not first). */
    public static void check(CompiledModel model) {
        CudaLoadedModel.check(model.graph());
    }

    /**
     * Host-to-device bandwidth from page-locked memory, bytes per second: the median of {@code reps} copies of
     * {@code bytes} (after one warm-up copy). The bound the GPU check compares scoring throughput with.
     */
    public double hostToDeviceBandwidth(long bytes, int reps) {
        java.nio.ByteBuffer host = api.mallocHost(bytes);
        long device = 0;
        long stream = 0;
        try {
            device = api.malloc(bytes);
            stream = api.createStream();
            double[] rates = new double[reps];
            for (int r = -1; r < reps; r++) {
                long start = System.nanoTime();
                api.copyToDevice(device, host, 0, bytes, stream);
                api.synchronize(stream);
                long nanos = System.nanoTime() - start;
                if (r >= 0) {
                    rates[r] = bytes * 1e9 / nanos;
                }
            }
            java.util.Arrays.sort(rates);
            return rates[reps / 2];
        } finally {
            if (stream != 0) {
                api.destroyStream(stream);
            }
            if (device != 0) {
                api.free(device);
            }
            api.freeHost(host);
        }
    }
}
