package dev.kiln.format.kiln;

import dev.kiln.engine.KilnException;
import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.Random;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * 100,000 seeded random mutations of a valid model file (bit flips, byte overwrites, truncations, insertions,
 * deletions, duplicated and swapped ranges, extreme integers over 4- and 8-byte fields). Every one must be refused
 * with a KilnException naming the file: never another exception, a hang or an out-of-memory.
 */
class MutationTest {
    private static final int MUTATIONS = 100_000;
    private static final String NAME = "mutated.kiln";

    @Test
    void everyMutatedFileIsRefusedWithAKilnException() {
        byte[] good = KilnFiles.smallModelBytes();
        Random random = new Random(20261127);
        int refused = 0;
        int identical = 0;
        long slowest = 0;
        long start = System.nanoTime();
        for (int i = 0; i < MUTATIONS; i++) {
            byte[] mutated = mutate(good, random);
            if (Arrays.equals(mutated, good)) {
                identical++;
                continue;
            }
            long t0 = System.nanoTime();
            try {
                KilnFormat.read(mutated, NAME);
                throw new AssertionError("mutation " + i + " was accepted: " + describe(good, mutated));
            } catch (KilnException e) {
                if (!e.getMessage().contains(NAME)) {
                    throw new AssertionError("mutation " + i + ": message does not name the file: " + e.getMessage(), e);
                }
                refused++;
            } catch (RuntimeException | Error e) {
                throw new AssertionError("mutation " + i + " raised " + e + " instead of a KilnException (" + describe(good, mutated) + ")", e);
            }
            slowest = Math.max(slowest, System.nanoTime() - t0);
        }
        double seconds = (System.nanoTime() - start) / 1e9;
        System.out.printf("MutationTest: %d mutated files refused, %d mutations left the file unchanged, %.1f s, slowest %.1f ms%n",
                refused, identical, seconds, slowest / 1e6);
        assertThat(refused + identical).isEqualTo(MUTATIONS);
        assertThat(refused).isGreaterThan(MUTATIONS * 9 / 10);
        assertThat(slowest).as("the slowest refusal, ns").isLessThan(2_000_000_000L);
    }

    static byte[] mutate(byte[] good, Random r) {
        byte[] b = good.clone();
        int n = b.length;
        switch (r.nextInt(9)) {
            case 0 -> {
                int flips = 1 + r.nextInt(8);
                for (int k = 0; k < flips; k++) {
                    int at = r.nextInt(n);
                    b[at] ^= (byte) (1 << r.nextInt(8));
                }
                return b;
            }
            case 1 -> {
                int bytes = 1 + r.nextInt(16);
                for (int k = 0; k < bytes; k++) {
                    b[r.nextInt(n)] = (byte) r.nextInt(256);
                }
                return b;
            }
            case 2 -> {
                return Arrays.copyOf(b, r.nextInt(n));
            }
            case 3 -> {
                int at = r.nextInt(n + 1);
                byte[] insert = new byte[1 + r.nextInt(64)];
                r.nextBytes(insert);
                return concat(Arrays.copyOf(b, at), insert, Arrays.copyOfRange(b, at, n));
            }
            case 4 -> {
                int at = r.nextInt(n);
                int length = 1 + r.nextInt(Math.min(256, n - at));
                return concat(Arrays.copyOf(b, at), Arrays.copyOfRange(b, at + length, n));
            }
            case 5 -> {
                int at = r.nextInt(n);
                int length = 1 + r.nextInt(Math.min(256, n - at));
                return concat(Arrays.copyOf(b, at + length), Arrays.copyOfRange(b, at, n));
            }
            case 6 -> {
                int length = 1 + r.nextInt(64);
                int x = r.nextInt(n - length);
                int y = r.nextInt(n - length);
                byte[] tmp = Arrays.copyOfRange(b, x, x + length);
                System.arraycopy(b, y, b, x, length);
                System.arraycopy(tmp, 0, b, y, length);
                return b;
            }
            case 7 -> {
                long[] extremes = {0, -1, 1, Integer.MAX_VALUE, Integer.MIN_VALUE, 0xFFFFFFFFL, Long.MAX_VALUE, Long.MIN_VALUE, n, n + 1, n - 1, 1L << 32};
                long v = extremes[r.nextInt(extremes.length)];
                ByteBuffer buf = ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
                if (r.nextBoolean()) {
                    buf.putInt(r.nextInt(n - 3), (int) v);
                } else {
                    buf.putLong(r.nextInt(n - 7), v);
                }
                return b;
            }
            default -> {
                // Text-level damage inside JSON: digits, quotes and brackets swapped for others.
                byte[] candidates = "0123456789\"{}[],:-.eE ".getBytes(java.nio.charset.StandardCharsets.US_ASCII);
                int edits = 1 + r.nextInt(4);
                for (int k = 0; k < edits; k++) {
                    int at = r.nextInt(n);
                    b[at] = candidates[r.nextInt(candidates.length)];
                }
                return b;
            }
        }
    }

    private static byte[] concat(byte[]... parts) {
        int total = 0;
        for (byte[] p : parts) {
            total += p.length;
        }
        byte[] out = new byte[total];
        int at = 0;
        for (byte[] p : parts) {
            System.arraycopy(p, 0, out, at, p.length);
            at += p.length;
        }
        return out;
    }

    private static String describe(byte[] good, byte[] mutated) {
        int first = 0;
        while (first < Math.min(good.length, mutated.length) && good[first] == mutated[first]) {
            first++;
        }
        return String.format("length %d -> %d, first difference at byte %d", good.length, mutated.length, first);
    }
}
