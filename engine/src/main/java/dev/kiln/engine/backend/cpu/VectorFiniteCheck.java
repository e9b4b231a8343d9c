package dev.kiln.engine.backend.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/** The Vector API half of {@link FiniteCheck}; loaded only when the incubator module is present. */
final class VectorFiniteCheck {
    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    /** Floats summed before one test: long enough that the test's branch costs nothing, short enough to rescan. */
    private static final int BLOCK = 1024;

    private VectorFiniteCheck() {
    }

    /**
     * The float index of the first block (or vector) that may hold a non-finite value, the scalar tail's start if
     * none, or -1. x - x is NaN exactly when x is NaN or infinite, and NaN survives addition, so one sum per block of
     * {@value #BLOCK} floats tells whether the block is clean; only a dirty block is looked at vector by vector.
     */
    static int firstBadLane(ByteBuffer b, int byteOffset, int count) {
        int lanes = SPECIES.length();
        int end = count - count % lanes;
        for (int block = 0; block < end; block += BLOCK) {
            int blockEnd = Math.min(end, block + BLOCK);
            FloatVector acc = FloatVector.zero(SPECIES);
            for (int i = block; i < blockEnd; i += lanes) {
                FloatVector v = FloatVector.fromByteBuffer(SPECIES, b, byteOffset + 4 * i, ByteOrder.LITTLE_ENDIAN);
                acc = acc.add(v.sub(v));
            }
            if (acc.test(VectorOperators.IS_NAN).anyTrue()) {
                for (int i = block; i < blockEnd; i += lanes) {
                    FloatVector v = FloatVector.fromByteBuffer(SPECIES, b, byteOffset + 4 * i, ByteOrder.LITTLE_ENDIAN);
                    if (v.sub(v).test(VectorOperators.IS_NAN).anyTrue()) {
                        return i;
                    }
                }
            }
        }
        return end < count ? end : -1;
    }

    /**
     * Copies the whole vectors of {@code count} floats from {@code src} to {@code dst}, summing x - x on the way.
     * Returns how many floats were copied (the scalar tail is the caller's), or its bitwise complement (negative) when
     * one of them is not finite.
     */
    static int copy(byte[] src, int srcIndex, ByteBuffer dst, int dstOffset, int count) {
        int lanes = SPECIES.length();
        int end = count - count % lanes;
        FloatVector acc = FloatVector.zero(SPECIES);
        for (int i = 0; i < end; i += lanes) {
            FloatVector v = FloatVector.fromByteArray(SPECIES, src, srcIndex + 4 * i, ByteOrder.LITTLE_ENDIAN);
            v.intoByteBuffer(dst, dstOffset + 4 * i, ByteOrder.LITTLE_ENDIAN);
            acc = acc.add(v.sub(v));
        }
        return acc.test(VectorOperators.IS_NAN).anyTrue() ? ~end : end;
    }

    static int lanes() {
        return SPECIES.length();
    }

    /**
     * Whether every whole vector of {@code count} floats stays finite when multiplied by {@code scale} (the scalar
     * tail is the caller's): x * scale - x * scale is NaN exactly when the product is NaN or infinite, and NaN survives
     * addition, so one sum answers for all. Only vector adds, multiplies and one mask test: a vector max, an operation
     * with a scalar operand or a lane taken out of a vector each allocated on every call in JDK 17.
     */
    static boolean allFiniteScaled(ByteBuffer b, int byteOffset, int count, float scale) {
        int lanes = SPECIES.length();
        int end = count - count % lanes;
        FloatVector acc = FloatVector.zero(SPECIES);
        FloatVector by = FloatVector.broadcast(SPECIES, scale);
        for (int i = 0; i < end; i += lanes) {
            FloatVector v = FloatVector.fromByteBuffer(SPECIES, b, byteOffset + 4 * i, ByteOrder.LITTLE_ENDIAN).mul(by);
            acc = acc.add(v.sub(v));
        }
        return !acc.test(VectorOperators.IS_NAN).anyTrue();
    }
}
