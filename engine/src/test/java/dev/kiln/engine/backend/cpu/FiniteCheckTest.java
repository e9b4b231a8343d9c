package dev.kiln.engine.backend.cpu;

import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Random;

import static org.assertj.core.api.Assertions.assertThat;

class FiniteCheckTest {
    private static final float[] BAD = {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, Float.intBitsToFloat(0x7fc12345)};

    /** Against a plain Float.isFinite scan, for sizes around the vector and block lengths and every position class. */
    @Test
    void findsTheFirstNonFiniteValueAnywhere() {
        Random random = new Random(7);
        for (int count : new int[] {1, 3, 15, 16, 17, 63, 64, 65, 79, 513, 1023, 1024, 1025, 4099}) {
            for (int trial = 0; trial < 40; trial++) {
                int offset = 4 * random.nextInt(3);
                ByteBuffer buffer = ByteBuffer.allocateDirect(offset + 4 * count).order(ByteOrder.LITTLE_ENDIAN);
                float[] values = new float[count];
                for (int i = 0; i < count; i++) {
                    values[i] = (float) (random.nextGaussian() * 1e30);
                }
                int bad = trial % 4 == 0 ? 0 : 1 + random.nextInt(3);
                for (int k = 0; k < bad; k++) {
                    values[random.nextInt(count)] = BAD[random.nextInt(BAD.length)];
                }
                if (trial == 1) {
                    values[count - 1] = Float.NaN;
                }
                for (int i = 0; i < count; i++) {
                    buffer.putFloat(offset + 4 * i, values[i]);
                }
                int expected = -1;
                for (int i = 0; i < count && expected < 0; i++) {
                    if (!Float.isFinite(values[i])) {
                        expected = i;
                    }
                }
                assertThat(FiniteCheck.firstNonFinite(buffer, offset, count)).as("count %d trial %d", count, trial).isEqualTo(expected);

                // The fused copy: from a byte array (at an odd offset, as rows place arrays), same answer, exact copy.
                byte[] source = new byte[3 + 4 * count];
                ByteBuffer.wrap(source).order(ByteOrder.LITTLE_ENDIAN).position(3).slice().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().put(values);
                ByteBuffer target = ByteBuffer.allocateDirect(offset + 4 * count).order(ByteOrder.LITTLE_ENDIAN);
                assertThat(FiniteCheck.copyChecked(source, 3, target, offset, count)).as("copy, count %d trial %d", count, trial).isEqualTo(expected);
                for (int i = 0; i < count; i++) {
                    assertThat(Float.floatToRawIntBits(target.getFloat(offset + 4 * i))).isEqualTo(Float.floatToRawIntBits(values[i]));
                }
            }
        }
    }

    @Test
    void largeFiniteValuesAreNotMistakenForOverflow() {
        ByteBuffer buffer = ByteBuffer.allocateDirect(4 * 2048).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < 2048; i++) {
            buffer.putFloat(4 * i, i % 2 == 0 ? Float.MAX_VALUE : -Float.MAX_VALUE);
        }
        assertThat(FiniteCheck.firstNonFinite(buffer, 0, 2048)).isEqualTo(-1);
    }

    /**
     * allWithin against a plain scan: every value finite and |v| <= bound. Values within a float ulp of the bound may
     * go either way (the contract), so the test places its outliers at twice the bound, its in-range values below
     * 0.999 of it; plus -0, NaN, infinities, tails and a bound that no finite value exceeds.
     */
    @Test
    void allWithinMatchesAPlainScan() {
        Random random = new Random(13);
        for (int count : new int[] {1, 3, 15, 16, 17, 513, 1025, 4099}) {
            for (int trial = 0; trial < 60; trial++) {
                int offset = 4 * random.nextInt(3);
                float bound = trial % 5 == 0 ? Float.MAX_VALUE : (float) Math.abs(random.nextGaussian() * 10) + 1;
                ByteBuffer buffer = ByteBuffer.allocateDirect(offset + 4 * count).order(ByteOrder.LITTLE_ENDIAN);
                float[] values = new float[count];
                for (int i = 0; i < count; i++) {
                    values[i] = (float) Math.max(-0.999 * bound, Math.min(0.999 * bound, random.nextGaussian() * bound / 4));
                }
                switch (trial % 6) {
                    case 1 -> values[random.nextInt(count)] = BAD[random.nextInt(BAD.length)];
                    case 2 -> values[random.nextInt(count)] = 0.999f * bound * (random.nextBoolean() ? 1 : -1);
                    case 3 -> values[random.nextInt(count)] = bound == Float.MAX_VALUE ? Float.POSITIVE_INFINITY : 2 * bound * (random.nextBoolean() ? 1 : -1);
                    case 4 -> values[count - 1] = -0f;
                    default -> { }
                }
                boolean expected = true;
                for (int i = 0; i < count; i++) {
                    buffer.putFloat(offset + 4 * i, values[i]);
                    expected &= Float.isFinite(values[i]) && Math.abs(values[i]) <= bound;
                }
                assertThat(FiniteCheck.allWithin(buffer, offset, count, bound)).as("count %d trial %d bound %s", count, trial, bound).isEqualTo(expected);
            }
        }
        ByteBuffer one = ByteBuffer.allocateDirect(4).order(ByteOrder.LITTLE_ENDIAN).putFloat(0, 1f);
        assertThat(FiniteCheck.allWithin(one, 0, 1, -1f)).as("a negative bound (weights not finite) admits nothing").isFalse();
    }
}
