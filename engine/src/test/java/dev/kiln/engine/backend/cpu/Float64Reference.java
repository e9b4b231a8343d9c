package dev.kiln.engine.backend.cpu;

import dev.kiln.engine.Kiln;
import dev.kiln.engine.backend.Kernel;
import dev.kiln.engine.exec.CompiledModel;
import dev.kiln.engine.exec.Executor;
import dev.kiln.engine.ir.Graph;
import dev.kiln.engine.pass.PassPipeline;

import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.fail;

/**
 * Shared pieces of the float64 reference tests ({@code *Float64ReferenceTest}): graphs compiled the way production
 * compiles them (no passes, the CPU backend), system properties that pick a kernel path set only while an executor
 * is built, the special functions in double written here (not Kiln's), and a comparison that reports its worst error.
 */
final class Float64Reference {
    /** The batch sizes every kernel runs at: 1 (single-row paths), odd small ones, and 513 (past 512-row chunks). */
    static final int[] BATCHES = {1, 3, 17, 513};
    /** float32's unit roundoff, 2^-24. */
    static final double U = 0x1p-24;
    /**
     * Rounding allowance per accumulated sum: a float32 sum of K terms is off by at most K·u·Σ|terms| (Higham's
     * γ_K), but blocked and FMA kernels round like a random walk, within a small multiple of √K·u·Σ|terms|
     * (Higham and Mary, 2019). Each sum below is allowed {@code SUM_ULPS}·√(K+1)·u·Σ|terms| (the +1 for the bias and
     * the rounding of the stored result): about the worst case for K up to 3, below it from there on (K = 513: 45 u
     * against 513 u).
     */
    static final double SUM_ULPS = 2;
    /** GELU's largest slope (at x ≈ 1.4): errors in its input grow by at most this much. */
    static final double GELU_SLOPE = 1.13;

    private Float64Reference() {
    }

    static float[] gaussian(Random random, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) random.nextGaussian();
        }
        return v;
    }

    /** Allowed error of a float32 sum of {@code terms} terms whose magnitudes add to {@code magnitude}. */
    static double sumError(int terms, double magnitude) {
        return SUM_ULPS * Math.sqrt(terms + 1.0) * U * magnitude;
    }

    /**
     * erf in double: its Maclaurin series below |x| = 2.5 (largest term under e^6.25 ≈ 520, so cancellation costs
     * under 1e-13), 1 - erfc above.
     */
    static double erf(double x) {
        if (Double.isNaN(x)) {
            return x;
        }
        double a = Math.abs(x);
        if (a >= 2.5) {
            return Math.copySign(1 - erfcContinuedFraction(a), x);
        }
        double sum = 0;
        double power = a; // a^(2n+1) / n! with alternating sign
        for (int n = 0; n < 100; n++) {
            double term = power / (2 * n + 1);
            sum += term;
            if (Math.abs(term) < 1e-18) {
                break;
            }
            power *= -a * a / (n + 1);
        }
        return Math.copySign(2 / Math.sqrt(Math.PI) * sum, x);
    }

    /** erfc in double: 1 - erf below 2.5, the continued fraction (Laplace's) above, so the tail keeps its relative accuracy. */
    static double erfc(double x) {
        if (Double.isNaN(x)) {
            return x;
        }
        return x >= 2.5 ? erfcContinuedFraction(x) : 1 - erf(x);
    }

    /** erfc(x) = exp(-x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))), evaluated from 80 levels down; x ≥ 2.5. */
    private static double erfcContinuedFraction(double x) {
        if (Double.isInfinite(x)) {
            return 0;
        }
        double tail = x;
        for (int n = 80; n >= 1; n--) {
            tail = x + (n / 2.0) / tail;
        }
        return Math.exp(-x * x) / (Math.sqrt(Math.PI) * tail);
    }

    /** Exact GELU, x Φ(x) = x/2 erfc(-x/√2) (NaN stays NaN). */
    static double gelu(double x) {
        if (Double.isInfinite(x)) {
            return x > 0 ? x : 0;
        }
        return 0.5 * x * erfc(-x / Math.sqrt(2));
    }

    /** The activation in double; relu as Math.max, which keeps NaN (PyTorch's semantics, which Kiln claims). */
    static double activation(String name, double v) {
        return switch (name) {
            case "none" -> v;
            case "relu" -> Math.max(v, 0);
            case "sigmoid" -> 1 / (1 + Math.exp(-v));
            case "tanh" -> Math.tanh(v);
            case "gelu" -> gelu(v);
            default -> throw new AssertionError(name);
        };
    }

    /**
     * The error bound after the activation, given the bound {@code before} on its input {@code v}: relu and none pass
     * errors on unchanged (1-Lipschitz, exact); GELU grows them by its slope; tanh and sigmoid (slopes 1 and 1/4) are
     * allowed 4 ulps of their own rounding on top.
     */
    static double activationError(String name, double v, double before) {
        double out = Math.abs(activation(name, v));
        return switch (name) {
            case "none", "relu" -> before;
            case "gelu" -> GELU_SLOPE * before + 4 * U * (out + Math.abs(v));
            default -> before + 4 * U * out;
        };
    }

    /** A graph compiled with no passes for the CPU backend, and executors built under chosen system properties. */
    static final class Compiled implements AutoCloseable {
        final CompiledModel model;

        Compiled(Graph graph) {
            this.model = Kiln.compile(graph, new PassPipeline(List.of(), false), CpuBackend.INSTANCE);
        }

        /**
         * An executor for up to {@code capacity} rows built with {@code properties} set (they pick kernel paths when
         * the schedule is built, which happens here and again only if the executor grows), restored afterwards.
         */
        CpuExecutor executor(int capacity, String... properties) {
            Map<String, String> before = new HashMap<>();
            for (int i = 0; i < properties.length; i += 2) {
                before.put(properties[i], System.getProperty(properties[i]));
                System.setProperty(properties[i], properties[i + 1]);
            }
            try {
                return (CpuExecutor) model.newExecutor(capacity);
            } finally {
                for (Map.Entry<String, String> e : before.entrySet()) {
                    if (e.getValue() == null) {
                        System.clearProperty(e.getKey());
                    } else {
                        System.setProperty(e.getKey(), e.getValue());
                    }
                }
            }
        }

        @Override
        public void close() {
            model.close();
        }
    }

    /** The kernel classes of {@code executor}'s schedule, in order (profiling off: no wrappers). */
    static List<Class<?>> kernels(Executor executor) {
        return ((CpuExecutor) executor).schedule().stream().<Class<?>>map(Kernel::getClass).toList();
    }

    /** Sets every input for {@code batch} rows, runs, and returns output {@code index}. */
    static float[] run(Executor executor, int batch, int index, float[]... inputs) {
        for (int i = 0; i < inputs.length; i++) {
            executor.setInput(i, inputs[i], 0, batch);
        }
        executor.run(batch);
        float[] out = new float[executor.outputElements(index)];
        executor.getOutput(index, out, 0);
        return out;
    }

    /**
     * Element-by-element comparison with a float64 reference: NaN exactly where the reference is NaN, elsewhere
     * within the given bound. Keeps the largest error and the largest error-to-bound ratio for the summary line.
     */
    static final class Check {
        private final String what;
        private double maxError;
        private double maxRatio;
        private long compared;
        private long nans;

        Check(String what) {
            this.what = what;
        }

        /** Counts a comparison; true when the reference is NaN (then {@code actual} must be NaN too). */
        private boolean countedNaN(float actual, double expected, String where) {
            compared++;
            if (!Double.isNaN(expected)) {
                return false;
            }
            nans++;
            if (!Float.isNaN(actual)) {
                fail("%s, %s: expected NaN (float64 reference), got %s", what, where, actual);
            }
            return true;
        }

        void close(float actual, double expected, double bound, String where) {
            if (countedNaN(actual, expected, where)) {
                return;
            }
            if (Float.isInfinite((float) expected)) {
                // An infinite result, or one past float's range: the float result is that infinity.
                if (actual != (float) expected) {
                    fail("%s, %s: got %s, float64 reference %s (%s as a float)", what, where, actual, expected, (float) expected);
                }
                return;
            }
            double error = Math.abs(actual - expected);
            if (!(error <= bound)) {
                fail("%s, %s: got %s, float64 reference %s, |error| %.3e > bound %.3e", what, where, actual, expected, error, bound);
            }
            maxError = Math.max(maxError, error);
            if (bound > 0) {
                maxRatio = Math.max(maxRatio, error / bound);
            }
        }

        /** Bit for bit (results that are one correctly rounded float operation); NaN matches any NaN. */
        void exact(float actual, double expected, String where) {
            if (countedNaN(actual, expected, where)) {
                return;
            }
            if (Float.floatToIntBits(actual) != Float.floatToIntBits((float) expected)) {
                fail("%s, %s: got %s, float64 reference rounded to float %s", what, where, actual, (float) expected);
            }
        }

        /** Asserts something was compared (and, when asked, some NaN) and prints the worst error. */
        Check done(boolean expectNaN) {
            assertThat(compared).as("%s: values compared", what).isPositive();
            if (expectNaN) {
                assertThat(nans).as("%s: NaN outputs compared", what).isPositive();
            }
            System.out.printf("float64 reference: %s: %d values (%d NaN), max |error| %.3e, max error/bound %.3f%n", what, compared, nans, maxError, maxRatio);
            return this;
        }

        double maxRatio() {
            return maxRatio;
        }
    }
}
