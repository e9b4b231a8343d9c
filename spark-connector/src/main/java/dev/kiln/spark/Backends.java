package dev.kiln.spark;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;
import dev.kiln.engine.backend.Backend;
import dev.kiln.engine.backend.cpu.CpuBackend;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.IntFunction;

/**
 * Backends by device kind. {@code cpu} is always there; {@code cuda} is Kiln's CUDA 12/13 backend, one per GPU of the
 * JVM. Another backend can replace it: registered here, or named by the system property {@code kiln.backend.cuda}
 * (a class with a public constructor taking the device ordinal), which is how executor JVMs find a stand-in in tests.
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
        if (device.kind().equals("cuda")) {
            try {
                return dev.kiln.engine.backend.cuda.CudaBackend.forDevice(device.ordinal());
            } catch (KilnException e) {
                String gpu = dev.kiln.engine.backend.gpu.GpuInventory.query().stream().filter(g -> g.index() == device.ordinal())
                        .map(g -> "nvidia-smi reports " + g).findFirst().orElse("nvidia-smi reports no such GPU here");
                throw new KilnException(e.code(), e.getMessage() + " [" + gpu + "]", e);
            }
        }
        throw KilnException.of(ErrorCode.BACKEND_UNAVAILABLE, "No %s backend in this JVM for device %s; use device cpu, cuda:N or auto",
                device.kind(), device);
    }
}
