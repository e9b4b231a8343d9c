package dev.kiln.engine.backend.gpu;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;

/**
 * What ND4J's only CUDA build can run on. {@code nd4j-cuda-11.6:1.0.0-M2.1} (the {@code -Pcuda-nd4j} profile) needs the
 * CUDA 11.6 runtime and ships kernels for compute capability up to 8.6 with no PTX to JIT from, so on newer GPUs
 * (Ada 8.9, Hopper 9.0: H100, H200) its kernels fail at the first launch. Kiln checks before using it and refuses with
 * a message that names the GPU, its capability and the way out.
 */
public final class Nd4jCudaSupport {
    /** The newest compute capability ND4J's CUDA build has kernels for. */
    public static final int MAX_MAJOR = 8;
    public static final int MAX_MINOR = 6;

    private Nd4jCudaSupport() {
    }

    public static boolean supports(GpuInventory.Gpu gpu) {
        return gpu.major() < MAX_MAJOR || gpu.major() == MAX_MAJOR && gpu.minor() <= MAX_MINOR;
    }

    /** Throws {@link ErrorCode#BACKEND_UNAVAILABLE} when ND4J's CUDA build cannot run on {@code gpu}. */
    public static void check(GpuInventory.Gpu gpu) {
        if (!supports(gpu)) {
            throw KilnException.of(ErrorCode.BACKEND_UNAVAILABLE,
                    "%s: ND4J's CUDA build (nd4j-cuda-11.6 1.0.0-M2.1, the -Pcuda-nd4j profile) has kernels for compute capability up to %d.%d "
                            + "and no PTX, so it cannot run on compute capability %s. Use Kiln's cuda backend (CUDA 12/13) for Ada and Hopper "
                            + "GPUs, or score on the CPU (device cpu).", gpu, MAX_MAJOR, MAX_MINOR, gpu.capability());
        }
    }
}
