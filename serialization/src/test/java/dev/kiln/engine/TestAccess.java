package dev.kiln.engine;

/** allclose for this module's tests (the engine's test helpers are not on this module's classpath). */
public final class TestAccess {
    private TestAccess() {
    }

    public static void assertAllClose(float[] actual, float[] expected, double rtol, double atol, String what) {
        if (actual.length != expected.length) {
            throw new AssertionError(what + ": " + actual.length + " values, expected " + expected.length);
        }
        for (int i = 0; i < expected.length; i++) {
            if (Math.abs(actual[i] - expected[i]) > atol + rtol * Math.abs(expected[i]) || Float.isNaN(actual[i]) != Float.isNaN(expected[i])) {
                throw new AssertionError(String.format("%s: element %d is %s, expected %s", what, i, actual[i], expected[i]));
            }
        }
    }
}
