package dev.kiln.engine.backend.cpu;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
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

    private static final VarHandle FLOATS = MethodHandles.byteArrayViewVarHandle(float[].class, ByteOrder.LITTLE_ENDIAN);

    private FiniteCheck() {
    }

    /**
     * Copies {@code count} little-endian floats from {@code src} (at byte {@code srcIndex}) to {@code dst} (at byte
     * {@code dstOffset}) and screens them in the same pass, while they are in registers: returns the index of the
     * first NaN or infinite value, or -1. All values are copied either way.
     */
    public static int copyChecked(byte[] src, int srcIndex, ByteBuffer dst, int dstOffset, int count) {
        ByteBuffer d = dst.order() == ByteOrder.LITTLE_ENDIAN ? dst : dst.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        int copied = 0;
        boolean dirty = false;
        if (VECTOR) {
            int r = VectorFiniteCheck.copy(src, srcIndex, d, dstOffset, count);
            dirty = r < 0;
            copied = dirty ? ~r : r;
        }
        int bad = -1;
        for (int i = copied; i < count; i++) {
            float v = (float) FLOATS.get(src, srcIndex + 4 * i);
            d.putFloat(dstOffset + 4 * i, v);
            if (bad < 0 && !Float.isFinite(v)) {
                bad = i;
            }
        }
        // A vector held a non-finite value: everything is copied by now, find the first one in the destination.
        return dirty ? firstNonFinite(d, dstOffset, count) : bad;
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

    /**
     * Whether {@code count} floats at {@code byteOffset} are all finite and none exceeds {@code bound} in magnitude,
     * up to one rounding at the bound itself (a value within a float ulp of it may go either way): the screen that
     * tells whether a chain of layers can overflow on this input ({@link DnnlChainKernel}). Each value is scaled so
     * that the bound lands on Float.MAX_VALUE, and a product that overflows is over the bound. One pass, vectorized
     * where the Vector API is present, allocation-free.
     */
    public static boolean allWithin(ByteBuffer buffer, int byteOffset, int count, float bound) {
        if (!(bound > 0)) {
            return false;
        }
        float scale = Float.MAX_VALUE / bound;
        ByteBuffer b = buffer.order() == ByteOrder.LITTLE_ENDIAN ? buffer : buffer.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        int start = 0;
        if (VECTOR) {
            if (!VectorFiniteCheck.allFiniteScaled(b, byteOffset, count, scale)) {
                return false;
            }
            start = count - count % VectorFiniteCheck.lanes();
        }
        boolean within = true;
        for (int i = start; i < count; i++) {
            within &= Float.isFinite(b.getFloat(byteOffset + 4 * i) * scale);
        }
        return within;
    }
}
