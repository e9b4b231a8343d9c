package dev.kiln.engine.backend.gpu;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;

import java.util.ArrayList;
import java.util.List;

/**
 * The start-up check of the {@code -Pcuda-nd4j} build. When ND4J's CUDA backend is on the classpath, eager mode runs
 * on the GPUs CUDA makes visible, so before ND4J loads, Kiln reads their compute capability ({@link GpuInventory},
 * nvidia-smi, no CUDA library loaded) and refuses GPUs that ND4J's CUDA 11.6 build has no kernels for
 * ({@link Nd4jCudaSupport}), or a machine with no GPU at all: a clear error instead of a failed kernel launch deep
 * inside ND4J. With the default CPU build it does nothing.
 */
public final class Nd4jBackendGuard {
    /** The class that marks ND4J's CUDA backend on the classpath. */
    static final String CUDA_BACKEND_CLASS = "org.nd4j.linalg.jcublas.JCublasBackend";

    private static volatile boolean checked;

    private Nd4jBackendGuard() {
    }

    /** Checks once per JVM (cheap afterwards); throws {@link ErrorCode#BACKEND_UNAVAILABLE} when ND4J cannot run here. */
    public static void ensureUsable() {
        if (checked) {
            return;
        }
        synchronized (Nd4jBackendGuard.class) {
            if (!checked) {
                if (cudaBuildOnClasspath()) {
                    check(GpuInventory.query(), System.getenv("CUDA_VISIBLE_DEVICES"));
                }
                checked = true;
            }
        }
    }

    public static boolean cudaBuildOnClasspath() {
        try {
            Class.forName(CUDA_BACKEND_CLASS, false, Nd4jBackendGuard.class.getClassLoader());
            return true;
        } catch (ClassNotFoundException e) {
            return false;
        }
    }

    /**
     * Refuses when none of {@code gpus} is visible, or when a visible one is newer than ND4J's CUDA build supports.
     * {@code visibleDevices} is CUDA_VISIBLE_DEVICES (null: all; indices are matched to nvidia-smi's; UUIDs or
     * anything else: all GPUs are checked).
     */
    static void check(List<GpuInventory.Gpu> gpus, String visibleDevices) {
        List<GpuInventory.Gpu> visible = visible(gpus, visibleDevices);
        if (visible.isEmpty()) {
            throw KilnException.of(ErrorCode.BACKEND_UNAVAILABLE,
                    "ND4J's CUDA build (nd4j-cuda-11.6, the -Pcuda-nd4j profile) is on the classpath but nvidia-smi reports no %sGPU%s; "
                            + "build Kiln without -Pcuda-nd4j to run eager mode on the CPU",
                    visibleDevices == null ? "" : "visible ", visibleDevices == null ? "" : " (CUDA_VISIBLE_DEVICES=" + visibleDevices + ")");
        }
        for (GpuInventory.Gpu gpu : visible) {
            Nd4jCudaSupport.check(gpu);
        }
    }

    private static List<GpuInventory.Gpu> visible(List<GpuInventory.Gpu> gpus, String visibleDevices) {
        if (visibleDevices == null) {
            return gpus;
        }
        List<GpuInventory.Gpu> out = new ArrayList<>();
        for (String item : visibleDevices.split(",")) {
            String id = item.trim();
            if (id.isEmpty()) {
                continue;
            }
            if (!id.chars().allMatch(Character::isDigit)) {
                return gpus;
            }
            int index = Integer.parseInt(id);
            gpus.stream().filter(g -> g.index() == index).forEach(out::add);
        }
        return out;
    }
}
