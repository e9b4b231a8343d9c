package dev.kiln.engine.backend.cpu;

import dev.kiln.engine.backend.cpu.Float64Reference.Check;
import dev.kiln.engine.backend.cpu.Float64Reference.Compiled;
import dev.kiln.engine.ir.Attributes;
import dev.kiln.engine.ir.Graph;
import dev.kiln.engine.ir.GraphBuilder;
import dev.kiln.engine.ir.TensorType;
import dev.kiln.engine.ir.Value;
import dev.kiln.engine.ops.OpRegistry;
import dev.kiln.engine.tensor.Shape;
import dev.kiln.engine.tensor.TensorData;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Random;

import static dev.kiln.engine.backend.cpu.Float64Reference.BATCHES;
import static dev.kiln.engine.backend.cpu.Float64Reference.U;
import static dev.kiln.engine.backend.cpu.Float64Reference.activation;
import static dev.kiln.engine.backend.cpu.Float64Reference.activationError;
import static dev.kiln.engine.backend.cpu.Float64Reference.gaussian;
import static dev.kiln.engine.backend.cpu.Float64Reference.kernels;
import static dev.kiln.engine.backend.cpu.Float64Reference.sumError;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * Dense layers ({@link DnnlDenseKernel}, its single-row {@link BlasDenseKernel}), dense chains ({@link DenseChainKernel},
 * the MLP's default path) and matmuls ({@link BlasMatMulKernel}), each compiled as a small graph on the CPU backend
 * the way production compiles it, against a float64 reference computed here by plain loops, at 1, 3, 17 and 513 rows.
 * Bounds: {@link Float64Reference#SUM_ULPS} √(K+1) u per sum of K products, times the sum of their magnitudes, with
 * earlier layers' bounds carried through W as independent errors (each input of a layer comes from its own sum).
 */
class DenseFloat64ReferenceTest {
    /** A dense layer's parameters and activation. */
    private record Layer(int k, int n, float[] w, float[] b, String activation) {
        static Layer random(Random r, int k, int n, boolean bias, String activation) {
            // Weights scaled by 1/√k keep every layer's outputs of order 1.
            float[] w = gaussian(r, n * k);
            for (int i = 0; i < w.length; i++) {
                w[i] /= (float) Math.sqrt(k);
            }
            return new Layer(k, n, w, bias ? gaussian(r, n) : null, activation);
        }
    }

    /** Values and error bounds of a float64 forward pass, row-major. */
    private record Forward(double[] value, double[] bound) {
    }

    /**
     * The float64 forward pass of {@code layers} over {@code rows} rows of {@code x}: per output
     * act(b + Σ x w), its bound √Σ (w · input bound)² + sumError(k, |b| + Σ |x w|), then through the activation.
     */
    private static Forward reference(List<Layer> layers, float[] x, int rows) {
        double[] v = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            v[i] = x[i];
        }
        double[] e = new double[x.length];
        for (Layer l : layers) {
            double[] nv = new double[rows * l.n];
            double[] ne = new double[rows * l.n];
            for (int r = 0; r < rows; r++) {
                for (int j = 0; j < l.n; j++) {
                    double acc = l.b == null ? 0 : l.b[j];
                    double magnitude = Math.abs(acc);
                    double carried = 0;
                    for (int i = 0; i < l.k; i++) {
                        double w = l.w[j * l.k + i];
                        double xv = v[r * l.k + i];
                        acc += xv * w;
                        magnitude += Math.abs(xv * w);
                        carried += w * w * e[r * l.k + i] * e[r * l.k + i];
                    }
                    nv[r * l.n + j] = activation(l.activation, acc);
                    ne[r * l.n + j] = activationError(l.activation, acc, Math.sqrt(carried) + sumError(l.k, magnitude));
                }
            }
            v = nv;
            e = ne;
        }
        return new Forward(v, e);
    }

    /** x -> dense -> dense -> ... with the layers' weights (and biases) as parameters; output "y". */
    private static Graph mlp(List<Layer> layers) {
        GraphBuilder b = new GraphBuilder();
        Value h = b.input("x", TensorType.float32(Shape.batched(layers.get(0).k)));
        int i = 0;
        for (Layer l : layers) {
            Value w = b.parameter("w" + i, TensorData.ofFloats(new long[] {l.n, l.k}, l.w));
            h = l.b == null ? b.add1(OpRegistry.DENSE, Attributes.of("activation", l.activation), "dense" + i, h, w)
                    : b.add1(OpRegistry.DENSE, Attributes.of("activation", l.activation), "dense" + i, h, w,
                    b.parameter("b" + i, TensorData.ofFloats(new long[] {l.n}, l.b)));
            i++;
        }
        b.output("y", h);
        return b.build();
    }

    private static void compare(Check check, float[] got, Forward expected, int n, int batch) {
        assertThat(got).as("outputs at batch %d", batch).hasSize(expected.value.length);
        for (int i = 0; i < got.length; i++) {
            check.close(got[i], expected.value[i], expected.bound[i], "batch " + batch + " row " + i / n + " column " + i % n);
        }
    }

    /** x with a NaN in row 0 and in row 400 (a later chunk) when there are that many rows. */
    private static float[] withNaNRows(float[] x, int k, int batch) {
        x[k / 2] = Float.NaN;
        if (batch > 400) {
            x[400 * k + 3] = Float.NaN;
        }
        return x;
    }

    /**
     * 257 -> 300 (relu, bias) -> 33 (gelu, no bias) -> 3 (bias): one {@link DenseChainKernel}, run in its own chunks
     * (432 rows per chunk: 513 rows as 272 + 241) and in forced 16-row chunks (513 rows as 31 x 16 + 17, a last row
     * folded into the chunk before), rows 0 and 400 holding a NaN that must make exactly their outputs NaN. The
     * reference is the float64 forward pass above.
     */
    @Test
    void denseChainMatchesAFloat64ForwardPassInEveryChunking() {
        Assumptions.assumeTrue(Dnnl.enabled(), "dense chains need oneDNN");
        Random random = new Random(101);
        List<Layer> layers = List.of(Layer.random(random, 257, 300, true, "relu"), Layer.random(random, 300, 33, false, "gelu"),
                Layer.random(random, 33, 3, true, "none"));
        try (Compiled compiled = new Compiled(mlp(layers))) {
            for (long forcedRows : new long[] {0, 16}) {
                String[] properties = forcedRows == 0 ? new String[0] : new String[] {"kiln.onednn.denseChainRows", Long.toString(forcedRows)};
                try (CpuExecutor executor = compiled.executor(513, properties)) {
                    assertThat(kernels(executor)).as("the schedule").containsExactly(DenseChainKernel.class);
                    DenseChainKernel chain = (DenseChainKernel) executor.schedule().get(0);
                    assertThat(chain.chunk()).as("rows per chunk").isEqualTo(forcedRows == 0 ? 432 : 16);
                    Check check = new Check("dense chain 257-300-33-3, chunk " + chain.chunk());
                    for (int batch : BATCHES) {
                        float[] x = withNaNRows(gaussian(random, batch * 257), 257, batch);
                        compare(check, Float64Reference.run(executor, batch, 0, x), reference(layers, x, batch), 3, batch);
                    }
                    check.done(true);
                }
            }
        }
    }

    /**
     * One dense layer per activation and bias choice, at odd widths (k, n) of (17, 513), (513, 3), (1, 17), (3, 1):
     * {@link DnnlDenseKernel} with packed weights (and, with {@code kiln.onednn.noGelu}, GELU in Kiln's vector
     * epilogue instead of oneDNN's post-op), its single-row path through OpenBLAS's sgemv and {@link Epilogue} at batch
     * 1. A NaN in row 0 must make that row's outputs NaN through every activation, relu included (max(NaN, 0) is NaN).
     * Reference: the float64 layer above.
     */
    @Test
    void oneDenseLayerMatchesAFloat64ReferenceForEveryActivation() {
        Random random = new Random(102);
        int[][] shapes = {{17, 513}, {513, 3}, {1, 17}, {3, 1}};
        String[] activations = {"none", "relu", "gelu", "tanh", "sigmoid"};
        int variant = 0;
        for (int[] shape : shapes) {
            for (String act : activations) {
                boolean bias = variant++ % 2 == 0;
                Layer layer = Layer.random(random, shape[0], shape[1], bias, act);
                try (Compiled compiled = new Compiled(mlp(List.of(layer)))) {
                    String[][] paths = act.equals("gelu") ? new String[][] {{}, {"kiln.onednn.noGelu", "true"}} : new String[][] {{}};
                    for (String[] properties : paths) {
                        try (CpuExecutor executor = compiled.executor(513, properties)) {
                            assertThat(kernels(executor)).containsExactly(Dnnl.enabled() ? DnnlDenseKernel.class : BlasDenseKernel.class);
                            Check check = new Check(String.format("dense %d -> %d %s%s%s", layer.k, layer.n, act, bias ? " + bias" : "",
                                    properties.length > 0 ? " (" + properties[0] + ")" : ""));
                            for (int batch : BATCHES) {
                                float[] x = gaussian(random, batch * layer.k);
                                x[0] = Float.NaN;
                                compare(check, Float64Reference.run(executor, batch, 0, x), reference(List.of(layer), x, batch), layer.n, batch);
                            }
                            check.done(true);
                        }
                    }
                }
            }
        }
    }

    /**
     * Weights computed by the graph (here a graph input) are not packed: the kernel reads them on every run. New weights
     * before each batch must give the float64 reference's result for those weights.
     */
    @Test
    void denseLayerWithWeightsFromTheGraphMatchesAFloat64Reference() {
        Random random = new Random(103);
        int k = 33;
        int n = 17;
        GraphBuilder b = new GraphBuilder();
        Value x = b.input("x", TensorType.float32(Shape.batched(k)));
        Value w = b.input("w", TensorType.float32(Shape.of(n, k)));
        b.output("y", b.add1(OpRegistry.DENSE, Attributes.of("activation", "relu"), "dense", x, w));
        try (Compiled compiled = new Compiled(b.build()); CpuExecutor executor = compiled.executor(513)) {
            assertThat(kernels(executor)).containsExactly(Dnnl.enabled() ? DnnlDenseKernel.class : BlasDenseKernel.class);
            Check check = new Check("dense 33 -> 17 relu, weights a graph input");
            for (int batch : BATCHES) {
                Layer layer = Layer.random(random, k, n, false, "relu");
                float[] in = gaussian(random, batch * k);
                compare(check, Float64Reference.run(executor, batch, 0, in, layer.w), reference(List.of(layer), in, batch), n, batch);
            }
            check.done(false);
        }
    }

    /** Float64 batched matmul: c[t] = a[t or 0] b[t or 0] with the bound sumError(k, Σ|a b|) per element. */
    private static Forward matmul(float[] a, float[] b, int matrices, int m, int k, int n, boolean aShared, boolean bShared) {
        double[] v = new double[matrices * m * n];
        double[] e = new double[v.length];
        for (int t = 0; t < matrices; t++) {
            int ao = aShared ? 0 : t * m * k;
            int bo = bShared ? 0 : t * k * n;
            for (int i = 0; i < m; i++) {
                for (int j = 0; j < n; j++) {
                    double acc = 0;
                    double magnitude = 0;
                    for (int p = 0; p < k; p++) {
                        double product = (double) a[ao + i * k + p] * b[bo + p * n + j];
                        acc += product;
                        magnitude += Math.abs(product);
                    }
                    v[(t * m + i) * n + j] = acc;
                    e[(t * m + i) * n + j] = sumError(k, magnitude);
                }
            }
        }
        return new Forward(v, e);
    }

    /**
     * {@link BlasMatMulKernel} (OpenBLAS sgemm per matrix pair) in the shapes graphs give it: [batch, 513] x a
     * [513, 3] parameter (one matrix of batch rows), [batch, 3, 17] x a [17, 1] parameter (broadcast over the batch),
     * and [batch, 1, 17] x [batch, 17, 3], both graph inputs (attention's shape). Reference: the float64 loop above.
     */
    @Test
    void matmulMatchesAFloat64Reference() {
        Random random = new Random(104);
        // {rank of a, m, k, n, b is a batched input}
        int[][] cases = {{2, 0, 513, 3, 0}, {3, 3, 17, 1, 0}, {3, 1, 17, 3, 1}};
        for (int[] c : cases) {
            int m = c[1];
            int k = c[2];
            int n = c[3];
            boolean bInput = c[4] == 1;
            GraphBuilder g = new GraphBuilder();
            Value a = g.input("a", TensorType.float32(c[0] == 2 ? Shape.batched(k) : Shape.batched(m, k)));
            float[] weights = gaussian(random, k * n);
            Value bv = bInput ? g.input("b", TensorType.float32(Shape.batched(k, n))) : g.parameter("b", TensorData.ofFloats(new long[] {k, n}, weights));
            g.output("c", g.add1(OpRegistry.MATMUL, Attributes.EMPTY, "matmul", a, bv));
            String what = String.format("matmul %s x %s", c[0] == 2 ? "[batch, " + k + "]" : "[batch, " + m + ", " + k + "]",
                    bInput ? "[batch, " + k + ", " + n + "]" : "[" + k + ", " + n + "]");
            try (Compiled compiled = new Compiled(g.build()); CpuExecutor executor = compiled.executor(513)) {
                assertThat(kernels(executor)).containsExactly(BlasMatMulKernel.class);
                Check check = new Check(what);
                for (int batch : BATCHES) {
                    float[] av = gaussian(random, batch * Math.max(1, m) * k);
                    av[0] = Float.NaN;
                    float[] bb = bInput ? gaussian(random, batch * k * n) : weights;
                    float[] got = bInput ? Float64Reference.run(executor, batch, 0, av, bb) : Float64Reference.run(executor, batch, 0, av);
                    Forward expected = c[0] == 2 ? matmul(av, bb, 1, batch, k, n, true, true)
                            : matmul(av, bb, batch, m, k, n, false, !bInput);
                    compare(check, got, expected, n, batch);
                }
                check.done(true);
            }
        }
    }

    /** The reference's erf and GELU against tabulated values (C99 libm erf and erfc, 16 digits). */
    @Test
    void theReferenceSpecialFunctionsMatchTabulatedValues() {
        double[][] erf = {{0.1, 0.1124629160182849}, {0.5, 0.5204998778130465}, {1, 0.8427007929497149}, {2, 0.9953222650189527},
            {2.5, 0.9995930479825550}, {3, 0.9999779095030014}, {-1.5, -0.9661051464753108}};
        for (double[] p : erf) {
            assertThat(Float64Reference.erf(p[0])).as("erf(%s)", p[0]).isCloseTo(p[1], org.assertj.core.data.Offset.offset(1e-15));
        }
        double[][] erfc = {{3, 2.209049699858544e-05}, {4, 1.541725790028002e-08}, {5, 1.537459794428035e-12}, {2.4, 6.885138966450786e-04}};
        for (double[] p : erfc) {
            assertThat(Float64Reference.erfc(p[0])).as("erfc(%s)", p[0]).isCloseTo(p[1], org.assertj.core.data.Percentage.withPercentage(1e-9));
        }
        assertThat(Float64Reference.gelu(1)).isCloseTo(0.8413447460685429, org.assertj.core.data.Offset.offset(1e-15));
        assertThat(Float64Reference.gelu(-3)).isCloseTo(-0.004049694094890287, org.assertj.core.data.Percentage.withPercentage(1e-11));
        assertThat(Float64Reference.gelu(Double.NaN)).isNaN();
        assertThat(U).isEqualTo(Math.ulp(1f) / 2);
    }
}
