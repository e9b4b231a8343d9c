package dev.kiln.engine.backend.cpu;

import dev.kiln.engine.backend.cpu.Float64Reference.Check;
import dev.kiln.engine.backend.cpu.Float64Reference.Compiled;
import dev.kiln.engine.ir.Attributes;
import dev.kiln.engine.ir.GraphBuilder;
import dev.kiln.engine.ir.TensorType;
import dev.kiln.engine.ir.Value;
import dev.kiln.engine.ops.OpRegistry;
import dev.kiln.engine.tensor.Shape;
import dev.kiln.engine.tensor.TensorData;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Random;
import java.util.function.DoubleUnaryOperator;

import static dev.kiln.engine.backend.cpu.Float64Reference.BATCHES;
import static dev.kiln.engine.backend.cpu.Float64Reference.U;
import static dev.kiln.engine.backend.cpu.Float64Reference.gaussian;
import static dev.kiln.engine.backend.cpu.Float64Reference.kernels;
import static dev.kiln.engine.backend.cpu.Float64Reference.sumError;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * Row and elementwise kernels, each compiled as a one-node graph on the CPU backend, against float64 references
 * computed here: softmax ({@link DnnlSoftmaxKernel}, and {@link RowKernels} with {@code kiln.onednn.noSoftmax}),
 * layer norm, the unary functions, add/sub/mul/div with their broadcasts, trailing reductions
 * ({@link ElementwiseKernels}), transpose and split ({@link RowKernels}), at 1, 3, 17 and 513 rows of odd widths, with
 * NaN, infinities and signed zeros where the op defines them.
 */
class RowFloat64ReferenceTest {
    /** The kernel classes the backend picked are these kernels (lambdas of {@code owner}), not the ops' reference kernels. */
    private static void assertKernelOf(CpuExecutor executor, Class<?> owner, String what) {
        List<Class<?>> schedule = kernels(executor);
        assertThat(schedule).as(what).hasSize(1);
        assertThat(schedule.get(0).getName()).as("%s: kernel", what).startsWith(owner.getName());
    }

    private static CpuExecutor oneNode(Compiled compiled, String... properties) {
        return compiled.executor(513, properties);
    }

    private static Compiled graph(String op, Attributes attributes, Shape input, TensorData... parameters) {
        GraphBuilder b = new GraphBuilder();
        Value[] in = new Value[1 + parameters.length];
        in[0] = b.input("x", TensorType.float32(input));
        for (int i = 0; i < parameters.length; i++) {
            in[i + 1] = b.parameter("p" + i, parameters[i]);
        }
        b.output("y", b.add1(op, attributes, op, in));
        return new Compiled(b.build());
    }

    /**
     * Softmax over the last axis of [batch, n], n in 1, 3, 16 (whole vector lanes), 17, 513, on oneDNN and on Kiln's
     * row kernel. Row 0 holds a NaN, row 1 a +Inf (both all NaN, as in PyTorch), row 2 a -Inf (0 there; a row of one
     * -Inf is all NaN). Reference: double max-subtracted exp over the double sum. Bound per element:
     * y · u · (|x - max| (the rounding of x - max, amplified by exp) + 4 (exp's own ulps) + 2 (the division) +
     * sumError's factor for the n-term positive sum).
     */
    @Test
    void softmaxMatchesAFloat64Reference() {
        Random random = new Random(301);
        for (int n : new int[] {1, 3, 16, 17, 513}) {
            try (Compiled compiled = graph(OpRegistry.SOFTMAX, Attributes.of("axis", -1L), Shape.batched(n))) {
                for (boolean switchedOff : new boolean[] {false, true}) {
                    String what = "softmax over " + n + (switchedOff ? " (kiln.onednn.noSoftmax)" : "");
                    try (CpuExecutor executor = switchedOff ? oneNode(compiled, "kiln.onednn.noSoftmax", "true") : oneNode(compiled)) {
                        assertKernelOf(executor, Dnnl.enabled() && !switchedOff ? DnnlSoftmaxKernel.class : RowKernels.class, what);
                        Check check = new Check(what);
                        for (int batch : BATCHES) {
                            float[] x = gaussian(random, batch * n);
                            for (int i = 0; i < x.length; i++) {
                                x[i] *= 3;
                            }
                            if (batch >= 3) {
                                x[n / 2] = Float.NaN;
                                x[n] = Float.POSITIVE_INFINITY;
                                x[2 * n + n - 1] = Float.NEGATIVE_INFINITY;
                            }
                            if (batch > 400) {
                                x[400 * n] = Float.NaN;
                            }
                            float[] got = Float64Reference.run(executor, batch, 0, x);
                            for (int r = 0; r < batch; r++) {
                                double max = Double.NEGATIVE_INFINITY;
                                for (int i = 0; i < n; i++) {
                                    max = Math.max(max, x[r * n + i]);
                                }
                                double sum = 0;
                                for (int i = 0; i < n; i++) {
                                    sum += Math.exp(x[r * n + i] - max);
                                }
                                for (int i = 0; i < n; i++) {
                                    double d = x[r * n + i] - max;
                                    double y = Math.exp(d) / sum;
                                    double bound = Double.isFinite(d) ? y * (U * (Math.abs(d) + 6) + sumError(n, 1)) : 0;
                                    check.close(got[r * n + i], y, bound, "batch " + batch + " row " + r + " column " + i);
                                }
                            }
                        }
                        check.done(true);
                    }
                }
            }
        }
    }

    /**
     * layer_norm over the last axis of [batch, d] (d = 1, 3, 17, 513) and of [batch, 3, 17], epsilon 1e-5. Reference:
     * double mean and population variance, (x - mean) / √(var + eps) · g + b. Bound: what a float32 implementation may
     * lose: the mean's sum carried through the normalization (g · inv · sumError(d, Σ|x|) / d), the variance's sum
     * (relative sumError on the normalized value), and the last multiply-add's roundings (2 u (|g z| + |b|)).
     */
    @Test
    void layerNormMatchesAFloat64Reference() {
        Random random = new Random(302);
        for (long[] dims : new long[][] {{1}, {3}, {17}, {513}, {3, 17}}) {
            int d = (int) dims[dims.length - 1];
            int perRow = (int) java.util.Arrays.stream(dims).reduce(1, (a, b) -> a * b);
            float[] g = gaussian(random, d);
            float[] bias = gaussian(random, d);
            try (Compiled compiled = graph(OpRegistry.LAYER_NORM, Attributes.of("epsilon", 1e-5), Shape.batched(dims),
                    TensorData.ofFloats(new long[] {d}, g), TensorData.ofFloats(new long[] {d}, bias));
                 CpuExecutor executor = oneNode(compiled)) {
                String what = "layer_norm of [batch, " + java.util.Arrays.toString(dims).replaceAll("[\\[\\]]", "") + "]";
                assertKernelOf(executor, RowKernels.class, what);
                Check check = new Check(what);
                for (int batch : BATCHES) {
                    float[] x = gaussian(random, batch * perRow);
                    for (int i = 0; i < x.length; i++) {
                        x[i] = x[i] * 2 + 0.5f;
                    }
                    if (batch >= 3) {
                        x[d + d / 2] = Float.NaN;
                    }
                    float[] got = Float64Reference.run(executor, batch, 0, x);
                    for (int r = 0; r < got.length / d; r++) {
                        double sum = 0;
                        double abs = 0;
                        for (int i = 0; i < d; i++) {
                            sum += x[r * d + i];
                            abs += Math.abs(x[r * d + i]);
                        }
                        double mean = sum / d;
                        double squares = 0;
                        for (int i = 0; i < d; i++) {
                            squares += (x[r * d + i] - mean) * (x[r * d + i] - mean);
                        }
                        double inv = 1 / Math.sqrt(squares / d + 1e-5);
                        for (int i = 0; i < d; i++) {
                            double z = (x[r * d + i] - mean) * inv;
                            double y = z * g[i] + bias[i];
                            double bound = Math.abs(g[i]) * inv * sumError(d, abs) / d + Math.abs(g[i] * z) * sumError(d, 1)
                                    + 2 * U * (Math.abs(g[i] * z) + Math.abs(bias[i]));
                            check.close(got[r * d + i], y, bound, "batch " + batch + " row " + r + " column " + i);
                        }
                    }
                }
                check.done(true);
            }
        }
    }

    /** Inputs of {@code n} floats: the special values first (as many as fit), then Gaussians scaled by 3. */
    private static float[] withSpecials(Random random, int n, float[] specials) {
        float[] x = gaussian(random, n);
        for (int i = 0; i < x.length; i++) {
            x[i] *= 3;
        }
        System.arraycopy(specials, 0, x, 0, Math.min(n, specials.length));
        return x;
    }

    /**
     * Every unary op the backend runs through {@link ElementwiseKernels#unary} over [batch, 17] (8,721 floats at 513
     * rows: two full 4,096-float chunks and a short one), with NaN, infinities, signed zeros, tiny and overflowing
     * inputs. Reference: the function in double. relu and neg must be bit for bit; exp, log, sqrt, tanh and sigmoid
     * (one rounding of a double function) within 2 u relative; erf within the 2e-7 relative error its fast form
     * promises (plus rounding); GELU within the 5e-7 its vector form promises plus 2 x² u: the vector form evaluates
     * erfc's exp(-x²/2 + P(t)) in float lanes, where rounding the argument (of size x²/2, twice) costs up to x² u
     * relative, more than 5e-7 below x = -2 (see {@link #vectorGeluKeepsItsDocumentedRelativeErrorInTheNegativeTail}).
     */
    @Test
    void unaryFunctionsMatchAFloat64Reference() {
        Random random = new Random(303);
        float[] specials = {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, 0f, -0f, 1e-30f, -1e-30f, 50f, -50f, 100f, -100f, 1f, -1f};
        float[] finiteSpecials = {Float.NaN, 0f, -0f, 1e-30f, -1e-30f, 9f, -9f, 1f, -1f};
        Object[][] ops = {
            {"relu", (DoubleUnaryOperator) v -> Math.max(v, 0), 0.0},
            {OpRegistry.NEG, (DoubleUnaryOperator) v -> -v, 0.0},
            {OpRegistry.EXP, (DoubleUnaryOperator) Math::exp, 2 * U},
            {OpRegistry.LOG, (DoubleUnaryOperator) Math::log, 2 * U},
            {OpRegistry.SQRT, (DoubleUnaryOperator) Math::sqrt, 2 * U},
            {"tanh", (DoubleUnaryOperator) Math::tanh, 2 * U},
            {"sigmoid", (DoubleUnaryOperator) v -> 1 / (1 + Math.exp(-v)), 2 * U},
            {OpRegistry.ERF, (DoubleUnaryOperator) Float64Reference::erf, 2e-7 + U},
            {"gelu", (DoubleUnaryOperator) Float64Reference::gelu, 5e-7},
        };
        for (Object[] op : ops) {
            String name = (String) op[0];
            DoubleUnaryOperator f = (DoubleUnaryOperator) op[1];
            double relative = (double) op[2];
            try (Compiled compiled = graph(name, Attributes.EMPTY, Shape.batched(17)); CpuExecutor executor = oneNode(compiled)) {
                assertKernelOf(executor, ElementwiseKernels.class, name);
                Check check = new Check(name + " over [batch, 17]");
                for (int batch : BATCHES) {
                    // GELU of -Inf is NaN in Kiln's formula (-Inf · 0) and 0 in the limit: left out as undefined here.
                    float[] x = withSpecials(random, batch * 17, name.equals("gelu") ? finiteSpecials : specials);
                    float[] got = Float64Reference.run(executor, batch, 0, x);
                    for (int i = 0; i < got.length; i++) {
                        double y = f.applyAsDouble(x[i]);
                        String where = "batch " + batch + " element " + i + " (x = " + x[i] + ")";
                        if (relative == 0) {
                            check.exact(got[i], y, where);
                        } else {
                            // Plus the smallest subnormal: results below float's normal range round to its grid.
                            double r = name.equals("gelu") ? relative + 2 * (double) x[i] * x[i] * U : relative;
                            check.close(got[i], y, r * Math.abs(y) + Float.MIN_VALUE, where);
                        }
                    }
                }
                check.done(true);
            }
        }
    }

    /**
     * The unary GELU kernel (the Vector API form shared with the dense and convolution epilogues) against the relative
     * error VectorEpilogue documents, 5e-7 + 2 x² u, over x in [-10, -2], 17 values a row at every batch size.
     * Reference: exact GELU in double, x/2 erfc(-x/√2).
     */
    @Test
    void vectorGeluKeepsItsDocumentedRelativeErrorInTheNegativeTail() {
        try (Compiled compiled = graph("gelu", Attributes.EMPTY, Shape.batched(17)); CpuExecutor executor = oneNode(compiled)) {
            assertKernelOf(executor, ElementwiseKernels.class, "gelu");
            Check check = new Check("gelu over [-10, -2]");
            for (int batch : BATCHES) {
                float[] x = new float[batch * 17];
                for (int i = 0; i < x.length; i++) {
                    x[i] = -10f + 8f * i / x.length;
                }
                float[] got = Float64Reference.run(executor, batch, 0, x);
                for (int i = 0; i < got.length; i++) {
                    double y = Float64Reference.gelu(x[i]);
                    // The documented bound: 5e-7 plus 2 x^2 u relative (erfc's exp argument -x^2/2 + P(t) is rounded in
                    // float lanes; measured 1.2e-6 near x = -3 and 6.6e-6 near x = -10, where |GELU| < 0.05).
                    check.close(got[i], y, (5e-7 + 2 * (double) x[i] * x[i] * U) * Math.abs(y), "batch " + batch + " element " + i + " (x = " + x[i] + ")");
                }
            }
            check.done(false);
        }
    }

    /**
     * add, sub, mul, div of [batch, 17] with another [batch, 17] input, with a [17] parameter row (the bias shape) on
     * either side, and with a scalar constant, specials included (Inf - Inf, 0 / 0, overflow). Reference: the double
     * operation rounded to float, which is the correctly rounded float result (double has more than 2·24 + 2 bits), so
     * the kernel must match bit for bit (any NaN for NaN).
     */
    @Test
    void binaryOpsMatchAFloat64ReferenceBitForBit() {
        Random random = new Random(304);
        float[] specials = {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, 0f, -0f, 3e38f, -3e38f, 1e-38f, 1.5f};
        String[] ops = {OpRegistry.ADD, OpRegistry.SUB, OpRegistry.MUL, OpRegistry.DIV};
        float[] row = withSpecials(random, 17, new float[] {Float.POSITIVE_INFINITY, -0f, 0f, 3e38f, 1e-38f});
        for (String op : ops) {
            // {description, how the other operand is given}: 0 a second input, 1 a [17] parameter after x, 2 before x, 3 a scalar before x
            for (int form = 0; form < 4; form++) {
                GraphBuilder b = new GraphBuilder();
                Value x = b.input("x", TensorType.float32(Shape.batched(17)));
                Value other = switch (form) {
                    case 0 -> b.input("z", TensorType.float32(Shape.batched(17)));
                    case 1, 2 -> b.parameter("row", TensorData.ofFloats(new long[] {17}, row));
                    default -> b.constant(TensorData.scalar(-2.5f));
                };
                boolean otherFirst = form >= 2;
                b.output("y", otherFirst ? b.add1(op, Attributes.EMPTY, op, other, x) : b.add1(op, Attributes.EMPTY, op, x, other));
                String what = op + (switch (form) {
                    case 0 -> " of two [batch, 17] inputs";
                    case 1 -> " of [batch, 17] and a [17] row";
                    case 2 -> " of a [17] row and [batch, 17]";
                    default -> " of a scalar and [batch, 17]";
                });
                try (Compiled compiled = new Compiled(b.build()); CpuExecutor executor = oneNode(compiled)) {
                    assertKernelOf(executor, ElementwiseKernels.class, what);
                    Check check = new Check(what);
                    for (int batch : BATCHES) {
                        float[] xv = withSpecials(random, batch * 17, specials);
                        float[] zv = withSpecials(random, batch * 17, new float[] {Float.NaN, Float.POSITIVE_INFINITY, Float.POSITIVE_INFINITY, 0f, 0f, 3e38f, 3e38f});
                        float[] got = form == 0 ? Float64Reference.run(executor, batch, 0, xv, zv) : Float64Reference.run(executor, batch, 0, xv);
                        for (int i = 0; i < got.length; i++) {
                            double o = switch (form) {
                                case 0 -> zv[i];
                                case 1, 2 -> row[i % 17];
                                default -> -2.5;
                            };
                            double a = otherFirst ? o : xv[i];
                            double c = otherFirst ? xv[i] : o;
                            double y = switch (op) {
                                case OpRegistry.ADD -> a + c;
                                case OpRegistry.SUB -> a - c;
                                case OpRegistry.MUL -> a * c;
                                default -> a / c;
                            };
                            check.exact(got[i], y, "batch " + batch + " element " + i + " (" + a + " " + op + " " + c + ")");
                        }
                    }
                    check.done(true);
                }
            }
        }
    }

    /**
     * reduce_sum and reduce_mean of [batch, 3, 17] over {2}, {1, 2} (trailing runs) and {1} (a middle axis, 17
     * sums per row), keeping the axes or not. Reference: double sums; bound sumError(count, Σ|x|) (over count for
     * the mean). A NaN in row 0 makes exactly the sums that include it NaN.
     */
    @Test
    void trailingReductionsMatchAFloat64Reference() {
        Random random = new Random(305);
        for (String op : new String[] {OpRegistry.REDUCE_SUM, OpRegistry.REDUCE_MEAN}) {
            for (long[] axes : new long[][] {{2}, {1, 2}, {1}, {-1}}) {
                for (long keep : new long[] {0, 1}) {
                    Attributes attributes = Attributes.of("axes", axes, "keepdims", keep);
                    String what = op + " of [batch, 3, 17] over " + java.util.Arrays.toString(axes) + " keepdims " + keep;
                    try (Compiled compiled = graph(op, attributes, Shape.batched(3, 17)); CpuExecutor executor = oneNode(compiled)) {
                        assertKernelOf(executor, ElementwiseKernels.class, what);
                        boolean[] reduced = {false, false, false};
                        for (long a : axes) {
                            reduced[(int) (a < 0 ? a + 3 : a)] = true;
                        }
                        int count = (reduced[1] ? 3 : 1) * (reduced[2] ? 17 : 1);
                        Check check = new Check(what);
                        for (int batch : BATCHES) {
                            float[] x = gaussian(random, batch * 51);
                            x[20] = Float.NaN;
                            float[] got = Float64Reference.run(executor, batch, 0, x);
                            assertThat(got).hasSize(batch * 51 / count);
                            double[] sums = new double[got.length];
                            double[] abs = new double[got.length];
                            for (int r = 0; r < batch; r++) {
                                for (int i = 0; i < 3; i++) {
                                    for (int j = 0; j < 17; j++) {
                                        // Output index: row, then the kept axes in order.
                                        int o = r * (51 / count) + (reduced[1] ? 0 : i * (reduced[2] ? 1 : 17)) + (reduced[2] ? 0 : j);
                                        sums[o] += x[r * 51 + i * 17 + j];
                                        abs[o] += Math.abs(x[r * 51 + i * 17 + j]);
                                    }
                                }
                            }
                            boolean mean = op.equals(OpRegistry.REDUCE_MEAN);
                            for (int o = 0; o < got.length; o++) {
                                check.close(got[o], mean ? sums[o] / count : sums[o], sumError(count, abs[o]) / (mean ? count : 1), "batch " + batch + " output " + o);
                            }
                        }
                        check.done(true);
                    }
                }
            }
        }
    }

    /**
     * transpose of [batch, 3, 17] by (0, 2, 1), of [batch, 3, 5, 7] by (0, 3, 1, 2), of [batch, 2, 3, 1, 5] by
     * (0, 4, 2, 3, 1) (rank 5: the general odometer), and of [batch, 3, 5] by (2, 0, 1) (the batch axis moved); split
     * of [batch, 17] into 1, 3 and 13 columns. Reference: the index arithmetic written here (copies: bit for bit).
     */
    @Test
    void transposeAndSplitMatchTheirIndexArithmetic() {
        Random random = new Random(306);
        long[][][] cases = {{{3, 17}, {0, 2, 1}}, {{3, 5, 7}, {0, 3, 1, 2}}, {{2, 3, 1, 5}, {0, 4, 2, 3, 1}}, {{3, 5}, {2, 0, 1}}};
        for (long[][] c : cases) {
            long[] perm = c[1];
            String what = "transpose of [batch, " + java.util.Arrays.toString(c[0]).replaceAll("[\\[\\]]", "") + "] by " + java.util.Arrays.toString(perm);
            try (Compiled compiled = graph(OpRegistry.TRANSPOSE, Attributes.of("perm", perm), Shape.batched(c[0])); CpuExecutor executor = oneNode(compiled)) {
                assertKernelOf(executor, RowKernels.class, what);
                Check check = new Check(what);
                for (int batch : BATCHES) {
                    int rank = perm.length;
                    int[] dims = new int[rank];
                    dims[0] = batch;
                    for (int d = 1; d < rank; d++) {
                        dims[d] = (int) c[0][d - 1];
                    }
                    int count = java.util.Arrays.stream(dims).reduce(1, (a, b) -> a * b);
                    float[] x = gaussian(random, count);
                    x[1] = Float.NaN;
                    float[] got = Float64Reference.run(executor, batch, 0, x);
                    assertThat(got).hasSize(count);
                    int[] index = new int[rank];
                    for (int i = 0; i < count; i++) {
                        // Input index of output element i: out index j has in[perm[k]] = j[k].
                        int rest = i;
                        for (int k = rank - 1; k >= 0; k--) {
                            int size = dims[(int) perm[k]];
                            index[(int) perm[k]] = rest % size;
                            rest /= size;
                        }
                        int at = 0;
                        for (int d = 0; d < rank; d++) {
                            at = at * dims[d] + index[d];
                        }
                        check.exact(got[i], x[at], "batch " + batch + " element " + i);
                    }
                }
                check.done(true);
            }
        }
        long[] sizes = {1, 3, 13};
        GraphBuilder b = new GraphBuilder();
        List<Value> pieces = b.add(OpRegistry.SPLIT, Attributes.of("axis", 1L, "sizes", sizes), List.of(b.input("x", TensorType.float32(Shape.batched(17)))), "split");
        for (int k = 0; k < pieces.size(); k++) {
            b.output("y" + k, pieces.get(k));
        }
        try (Compiled compiled = new Compiled(b.build()); CpuExecutor executor = oneNode(compiled)) {
            assertKernelOf(executor, RowKernels.class, "split");
            Check check = new Check("split of [batch, 17] into 1, 3, 13");
            for (int batch : BATCHES) {
                float[] x = gaussian(random, batch * 17);
                x[2] = Float.NaN;
                Float64Reference.run(executor, batch, 0, x);
                for (int k = 0, start = 0; k < sizes.length; start += (int) sizes[k], k++) {
                    float[] got = new float[executor.outputElements(k)];
                    executor.getOutput(k, got, 0);
                    assertThat(got).hasSize(batch * (int) sizes[k]);
                    for (int i = 0; i < got.length; i++) {
                        int r = i / (int) sizes[k];
                        check.exact(got[i], x[r * 17 + start + i % (int) sizes[k]], "batch " + batch + " piece " + k + " element " + i);
                    }
                }
            }
            check.done(true);
        }
    }
}
