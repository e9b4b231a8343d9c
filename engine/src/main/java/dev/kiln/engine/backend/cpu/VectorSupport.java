package dev.kiln.engine.backend.cpu;

/**
 * Whether the JDK Vector API can be used: the {@code jdk.incubator.vector} module is in the boot layer and not disabled
 * with {@code -Dkiln.disableVectorApi=true}. Deliberately free of any vector type, so reading the flag never loads the
 * incubator classes: without the module, the classes that use them ({@link VectorMath}, {@link VectorEpilogue},
 * {@link VectorFiniteCheck}) are never touched and the scalar loops run.
 */
final class VectorSupport {
    static final boolean AVAILABLE = ModuleLayer.boot().findModule("jdk.incubator.vector").isPresent()
            && !Boolean.getBoolean("kiln.disableVectorApi");

    private VectorSupport() {
    }
}
