package dev.kiln.engine.backend.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/** Array loops with the JDK Vector API; used only when {@link VectorSupport#AVAILABLE}. */
final class VectorMath {
    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;

    private VectorMath() {
    }

    /** {@code a[i] = exp(a[i] - shift)} for i < n; returns the sum of the results. */
    static double expMinus(float[] a, int n, float shift) {
        int lanes = SPECIES.length();
        int end = n - n % lanes;
        FloatVector sum = FloatVector.zero(SPECIES);
        int i = 0;
        for (; i < end; i += lanes) {
            FloatVector e = FloatVector.fromArray(SPECIES, a, i).sub(shift).lanewise(VectorOperators.EXP);
            e.intoArray(a, i);
            sum = sum.add(e);
        }
        double total = sum.reduceLanes(VectorOperators.ADD);
        for (; i < n; i++) {
            a[i] = (float) Math.exp(a[i] - shift);
            total += a[i];
        }
        return total;
    }

    /** {@code a[i] = gelu(a[i])} for i < n, in vector lanes ({@link VectorEpilogue#gelu}), the tail through the scalar fit. */
    static void gelu(float[] a, int n) {
        int lanes = SPECIES.length();
        int end = n - n % lanes;
        for (int i = 0; i < end; i += lanes) {
            VectorEpilogue.gelu(FloatVector.fromArray(SPECIES, a, i)).intoArray(a, i);
        }
        for (int i = end; i < n; i++) {
            a[i] = dev.kiln.engine.ops.MathFunctions.geluFast(a[i]);
        }
    }
}
