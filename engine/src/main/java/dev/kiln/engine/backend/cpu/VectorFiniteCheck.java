package dev.kiln.engine.backend.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/** The Vector API half of {@link FiniteCheck}; loaded only when the incubator module is present. */
final class VectorFiniteCheck {
    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;

    private VectorFiniteCheck() {
    }

    /** The float index of the first vector holding a non-finite value, the scalar tail's start if none, or -1. */
    static int firstBadLane(ByteBuffer b, int byteOffset, int count) {
        int lanes = SPECIES.length();
        int end = count - count % lanes;
        for (int i = 0; i < end; i += lanes) {
            FloatVector v = FloatVector.fromByteBuffer(SPECIES, b, byteOffset + 4 * i, ByteOrder.LITTLE_ENDIAN);
            if (v.sub(v).test(VectorOperators.IS_NAN).anyTrue()) {
                return i;
            }
        }
        return end < count ? end : -1;
    }
}
