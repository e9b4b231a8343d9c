package dev.kiln.spark;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;
import dev.kiln.engine.backend.Backend;
import dev.kiln.engine.backend.cpu.CpuBackend;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.IntFunction;

/**
 * Backends by device kind. {@code cpu} is always there. A GPU backend registers for {@code cuda} (the GPU issue
 * brings one); it can also be named by the system property {@code kiln.backend.cuda} (a class with a public
 * constructor taking the device ordinal), which is how executor JVMs find it.
 */
public final class Backends {
    private static final Map<String, IntFunction<Backend>> FACTORIES = new ConcurrentHashMap<>();

    private Backends() {
    }

    public static void register(String kind, IntFunction<Backend> factory) {
        FACTORIES.put(kind, factory);
    }

    public static void unregister(String kind) {
        FACTORIES.remove(kind);
    }

    /** Whether a backend for {@code kind} is available in this JVM. */
    public static boolean available(String kind) {
        return kind.equals("cpu") || FACTORIES.containsKey(kind) || System.getProperty("kiln.backend." + kind) != null;
    }

    public static Backend forDevice(Device device) {
        if (!device.isGpu()) {
            return CpuBackend.INSTANCE;
        }
        IntFunction<Backend> factory = FACTORIES.get(device.kind());
        if (factory != null) {
            return factory.apply(device.ordinal());
        }
        String className = System.getProperty("kiln.backend." + device.kind());
        if (className != null) {
            try {
                return (Backend) Class.forName(className).getConstructor(int.class).newInstance(device.ordinal());
            } catch (ReflectiveOperationException | ClassCastException e) {
                throw new KilnException(ErrorCode.BACKEND_UNAVAILABLE, "Cannot create backend " + className + " for " + device + ": " + e, e);
            }
        }
        String gpu = dev.kiln.engine.backend.gpu.GpuInventory.query().stream().filter(g -> g.index() == device.ordinal())
                .map(g -> " (" + g + (dev.kiln.engine.backend.gpu.Nd4jCudaSupport.supports(g) ? ")" : "; newer than ND4J's CUDA build supports)"))
                .findFirst().orElse(" (nvidia-smi reports no such GPU here)");
        throw KilnException.of(ErrorCode.BACKEND_UNAVAILABLE,
                "No %s backend in this JVM for device %s%s: Kiln's CUDA backend is not built yet (issue #8); use device cpu or auto",
                device.kind(), device, gpu);
    }
}
