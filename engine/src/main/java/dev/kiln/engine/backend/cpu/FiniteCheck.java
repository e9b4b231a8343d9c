package dev.kiln.engine.backend.cpu;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * Finds the first NaN or infinite float in a block of off-heap memory: vectorized (x - x is NaN exactly when x is NaN
 * or infinite) when the JDK Vector API is present, a scalar loop otherwise. Used to screen whole input batches in one
 * pass instead of testing every value of every row.
 */
public final class FiniteCheck {
    private static final boolean VECTOR = ModuleLayer.boot().findModule("jdk.incubator.vector").isPresent()
            && !Boolean.getBoolean("kiln.disableVectorApi");

    private FiniteCheck() {
    }

    /** Index (in floats from {@code byteOffset}) of the first non-finite of {@code count} floats, or -1. */
    public static int firstNonFinite(ByteBuffer buffer, int byteOffset, int count) {
        ByteBuffer b = buffer.order() == ByteOrder.LITTLE_ENDIAN ? buffer : buffer.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        int start = 0;
        if (VECTOR) {
            int found = VectorFiniteCheck.firstBadLane(b, byteOffset, count);
            if (found < 0) {
                return -1;
            }
            start = found;
        }
        for (int i = start; i < count; i++) {
            if (!Float.isFinite(b.getFloat(byteOffset + 4 * i))) {
                return i;
            }
        }
        return -1;
    }
}
