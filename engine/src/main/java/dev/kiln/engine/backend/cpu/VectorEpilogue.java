package dev.kiln.engine.backend.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * Bias add and relu or GELU with the JDK Vector API; loaded only when the incubator module is present. GELU is
 * {@code x/2 erfc(-x/sqrt 2)} through the same erfc fit as {@link dev.kiln.engine.ops.MathFunctions#erfcFast},
 * evaluated in float lanes: relative error under 5e-7 + 2 x^2 2^-24, that is about 5e-7 for x above -2 and up to
 * 6.6e-6 near x = -10 (erfc's exp argument, -x^2/2 + P(t), is rounded in float lanes), where |GELU| is below 0.05 and
 * the absolute error below 6e-8 (RowFloat64ReferenceTest).
 */
final class VectorEpilogue extends Epilogue {
    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    private static final ByteOrder ORDER = ByteOrder.LITTLE_ENDIAN;

    private final boolean relu;
    private final boolean gelu;

    VectorEpilogue(boolean relu) {
        this(relu, false);
    }

    VectorEpilogue(boolean relu, boolean gelu) {
        this.relu = relu;
        this.gelu = gelu;
    }

    /** GELU of every lane: x/2 * erfc(-x / sqrt 2), erfc from Numerical Recipes' erfcc fit. */
    static FloatVector gelu(FloatVector x) {
        FloatVector u = x.mul(-0.70710678118654752f);
        FloatVector z = u.abs();
        FloatVector t = FloatVector.broadcast(SPECIES, 1f).div(z.mul(0.5f).add(1f));
        FloatVector p = t.mul(0.17087277f).add(-0.82215223f);
        p = p.fma(t, FloatVector.broadcast(SPECIES, 1.48851587f));
        p = p.fma(t, FloatVector.broadcast(SPECIES, -1.13520398f));
        p = p.fma(t, FloatVector.broadcast(SPECIES, 0.27886807f));
        p = p.fma(t, FloatVector.broadcast(SPECIES, -0.18628806f));
        p = p.fma(t, FloatVector.broadcast(SPECIES, 0.09678418f));
        p = p.fma(t, FloatVector.broadcast(SPECIES, 0.37409196f));
        p = p.fma(t, FloatVector.broadcast(SPECIES, 1.00002368f));
        p = p.fma(t, FloatVector.broadcast(SPECIES, -1.26551223f));
        FloatVector r = t.mul(z.mul(z).neg().add(p).lanewise(VectorOperators.EXP));
        VectorMask<Float> negative = u.lt(0f);
        FloatVector erfc = r.blend(FloatVector.broadcast(SPECIES, 2f).sub(r), negative);
        return x.mul(0.5f).mul(erfc);
    }

    @Override
    void apply(ByteBuffer out, int outByteOffset, ByteBuffer bias, int biasByteOffset, int rows, int n) {
        if (bias == null && (long) rows * n <= Integer.MAX_VALUE) {
            // Without a bias the rows are one flat run: one loop instead of one per row (relu over 1024 x 256 floats:
            // 36 us against 47-54 us per row, in a standalone measurement).
            n = rows * n;
            rows = 1;
        }
        int lanes = SPECIES.length();
        int vectorEnd = n - n % lanes;
        FloatVector zero = FloatVector.zero(SPECIES);
        for (int r = 0; r < rows; r++) {
            int row = outByteOffset + r * n * 4;
            int j = 0;
            for (; j < vectorEnd; j += lanes) {
                FloatVector v = FloatVector.fromByteBuffer(SPECIES, out, row + j * 4, ORDER);
                if (bias != null) {
                    v = v.add(FloatVector.fromByteBuffer(SPECIES, bias, biasByteOffset + j * 4, ORDER));
                }
                if (relu) {
                    v = v.max(zero);
                } else if (gelu) {
                    v = gelu(v);
                }
                v.intoByteBuffer(out, row + j * 4, ORDER);
            }
            for (; j < n; j++) {
                int at = row + j * 4;
                float v = out.getFloat(at);
                if (bias != null) {
                    v += bias.getFloat(biasByteOffset + j * 4);
                }
                out.putFloat(at, relu ? Math.max(v, 0f) : gelu ? dev.kiln.engine.ops.MathFunctions.geluFast(v) : v);
            }
        }
    }
}
