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

    static int lanes() {
        return SPECIES.length();
    }

    /**
     * Softmax of each of {@code rows} rows of {@code n} values in {@code a} (n a multiple of the lane count: attention
     * rows of 16 are one AVX-512 vector): max, exp and sum stay in lanes, no per-row copies. A NaN anywhere in a row
     * makes the whole row NaN, as in the scalar kernel.
     */
    static void softmaxRows(float[] a, int rows, int n) {
        int lanes = SPECIES.length();
        for (int r = 0; r < rows; r++) {
            int base = r * n;
            FloatVector max = FloatVector.broadcast(SPECIES, Float.NEGATIVE_INFINITY);
            boolean nan = false;
            for (int i = 0; i < n; i += lanes) {
                FloatVector v = FloatVector.fromArray(SPECIES, a, base + i);
                nan |= v.test(VectorOperators.IS_NAN).anyTrue();
                max = max.max(v);
            }
            if (nan) {
                java.util.Arrays.fill(a, base, base + n, Float.NaN);
                continue;
            }
            float shift = max.reduceLanes(VectorOperators.MAX);
            FloatVector sum = FloatVector.zero(SPECIES);
            for (int i = 0; i < n; i += lanes) {
                FloatVector e = FloatVector.fromArray(SPECIES, a, base + i).sub(shift).lanewise(VectorOperators.EXP);
                e.intoArray(a, base + i);
                sum = sum.add(e);
            }
            float scale = (float) (1.0 / sum.reduceLanes(VectorOperators.ADD));
            for (int i = 0; i < n; i += lanes) {
                FloatVector.fromArray(SPECIES, a, base + i).mul(scale).intoArray(a, base + i);
            }
        }
    }
}
