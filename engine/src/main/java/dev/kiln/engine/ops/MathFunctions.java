package dev.kiln.engine.ops;

/** Special functions the JDK lacks, in double precision. */
public final class MathFunctions {
    private static final double TWO_OVER_SQRT_PI = 1.1283791670955126;
    private static final double ONE_OVER_SQRT_PI = 0.5641895835477563;

    private MathFunctions() {
    }

    /**
     * The error function: its Maclaurin series below |x| = 3 (terms fall below 1e-17 of the sum; cancellation costs
     * at most ~1e-14), the asymptotic expansion of erfc above (absolute error under 5e-9), and exact NaN/infinity.
     */
    public static double erf(double x) {
        if (Double.isNaN(x)) {
            return x;
        }
        double ax = Math.abs(x);
        double result;
        if (ax < 3.0) {
            double x2 = ax * ax;
            double term = ax;
            double sum = ax;
            for (int n = 1; n < 200; n++) {
                term *= -x2 / n;
                double contribution = term / (2 * n + 1);
                sum += contribution;
                if (Math.abs(contribution) < 1e-17 * Math.abs(sum)) {
                    break;
                }
            }
            result = TWO_OVER_SQRT_PI * sum;
        } else if (ax < 6.0) {
            double inv = 1.0 / (2.0 * ax * ax);
            double term = 1.0;
            double sum = 1.0;
            for (int n = 1; n < 40; n++) {
                double next = -term * (2 * n - 1) * inv;
                if (Math.abs(next) >= Math.abs(term)) {
                    break;
                }
                term = next;
                sum += term;
            }
            result = 1.0 - Math.exp(-ax * ax) * ONE_OVER_SQRT_PI / ax * sum;
        } else {
            result = 1.0;
        }
        return x < 0 ? -result : result;
    }

    /**
     * The complementary error function to a fractional error under 1.2e-7 everywhere (Numerical Recipes' erfcc,
     * a Chebyshev fit of {@code t exp(-z^2 + P(t))} with {@code t = 1 / (1 + z/2)}): one exp and nine multiply-adds,
     * against the series of {@link #erf}, which takes up to 40 terms. Used by the compiled GELU kernels.
     */
    public static double erfcFast(double x) {
        double z = Math.abs(x);
        double t = 1.0 / (1.0 + 0.5 * z);
        double r = t * Math.exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806
                + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
        return x >= 0 ? r : 2.0 - r;
    }

    /**
     * erf to a relative error under about 2e-7: its Maclaurin series (six terms) below |x| = 0.5, where 1 - erfc
     * would cancel, and {@code 1 - erfcFast(x)} above. Used by the compiled {@code erf} kernel.
     */
    public static double erfFast(double x) {
        double ax = Math.abs(x);
        if (ax < 0.5) {
            double x2 = x * x;
            return TWO_OVER_SQRT_PI * x * (1 - x2 * (1.0 / 3 - x2 * (1.0 / 10 - x2 * (1.0 / 42 - x2 * (1.0 / 216 - x2 / 1320)))));
        }
        double r = 1 - erfcFast(ax);
        return x < 0 ? -r : r;
    }

    /**
     * Exact-form GELU, {@code x Phi(x) = x/2 erfc(-x / sqrt 2)}, through {@link #erfcFast}: relative error under
     * about 2e-7 for every x (erfc's fractional error carries straight through the product), NaN for NaN.
     */
    public static float geluFast(float x) {
        return (float) (0.5 * x * erfcFast(-x * 0.7071067811865476));
    }
}
