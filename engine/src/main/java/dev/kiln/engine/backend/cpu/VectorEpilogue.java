package dev.kiln.engine.backend.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/** Bias add and relu with the JDK Vector API; loaded only when the incubator module is present. */
final class VectorEpilogue extends Epilogue {
    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    private static final ByteOrder ORDER = ByteOrder.LITTLE_ENDIAN;

    private final boolean relu;

    VectorEpilogue(boolean relu) {
        this.relu = relu;
    }

    @Override
    void apply(ByteBuffer out, int outByteOffset, ByteBuffer bias, int biasByteOffset, int rows, int n) {
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
                }
                v.intoByteBuffer(out, row + j * 4, ORDER);
            }
            for (; j < n; j++) {
                int at = row + j * 4;
                float v = out.getFloat(at);
                if (bias != null) {
                    v += bias.getFloat(biasByteOffset + j * 4);
                }
                out.putFloat(at, relu ? Math.max(v, 0f) : v);
            }
        }
    }
}
