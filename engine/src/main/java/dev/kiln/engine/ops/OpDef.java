package dev.kiln.engine.ops;

import dev.kiln.engine.backend.Kernel;
import dev.kiln.engine.backend.Slot;
import dev.kiln.engine.ir.Attributes;
import dev.kiln.engine.ir.TensorType;

import java.util.List;

/**
 * One op of Kiln's IR: the single source of truth that the eager path, the tracer, importers, passes and backends
 * read. It names the op, documents its attributes, infers output types, and provides a pure-Java reference kernel
 * (used by constant folding and by backends for ops they do not specialise).
 */
public interface OpDef {
    String name();

    /** One sentence for docs/FORMAT.md. */
    String summary();

    /** The attributes the op reads, documented. */
    List<AttributeSpec> attributes();

    /** The inputs, documented (a trailing optional input is marked so). */
    List<String> inputNames();

    /** Infers output types; throws {@code KilnException(SHAPE_MISMATCH)} describing expected vs actual. */
    List<TensorType> inferTypes(List<TensorType> inputs, Attributes attributes);

    /** A reference kernel over the given slots. Kernels are single-threaded and owned by one executor. */
    Kernel newKernel(Slot[] inputs, Slot[] outputs, Attributes attributes);

    /** True when output 0 is a view of input 0's storage (no kernel work, e.g. reshape). */
    default boolean aliasesInput() {
        return false;
    }

    /** True when the kernel may write output 0 over input {@code index} (same size, elementwise, read-before-write). */
    default boolean canRunInPlace(int index) {
        return false;
    }

    /** A documented attribute. */
    record AttributeSpec(String name, String type, boolean required, String doc) { }
}
