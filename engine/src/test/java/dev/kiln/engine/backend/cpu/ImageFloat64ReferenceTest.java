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
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static dev.kiln.engine.backend.cpu.Float64Reference.BATCHES;
import static dev.kiln.engine.backend.cpu.Float64Reference.activation;
import static dev.kiln.engine.backend.cpu.Float64Reference.activationError;
import static dev.kiln.engine.backend.cpu.Float64Reference.gaussian;
import static dev.kiln.engine.backend.cpu.Float64Reference.kernels;
import static dev.kiln.engine.backend.cpu.Float64Reference.sumError;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * Convolutions ({@link DnnlConvKernel}, {@link BlasConvKernel}), pooling ({@link DnnlMaxPoolKernel},
 * {@link PoolKernel}) and the oneDNN layer chain ({@link DnnlChainKernel}), each compiled as a small graph on the CPU
 * backend, against float64 references computed here by plain loops over NCHW images, at batches of 1, 3, 17 and 513
 * images of odd sizes, with NaN inputs where the kernels promise PyTorch's propagation.
 */
class ImageFloat64ReferenceTest {
    /** Values and error bounds of an NCHW tensor computed in float64. */
    private record Images(double[] value, double[] bound, int n, int c, int h, int w) {
        static Images of(float[] x, int n, int c, int h, int w) {
            double[] v = new double[x.length];
            for (int i = 0; i < x.length; i++) {
                v[i] = x[i];
            }
            return new Images(v, new double[x.length], n, c, h, w);
        }
    }

    /** A convolution's geometry, parameters and activation. */
    private record Conv(int c, int m, int kh, int kw, long[] strides, long[] pads, long[] dilations, int groups, String act, float[] weights,
                        float[] bias) {
        static Conv random(Random r, int c, int m, int kh, int kw, long[] strides, long[] pads, long[] dilations, int groups, String act, boolean bias) {
            int fan = c / groups * kh * kw;
            float[] w = gaussian(r, m * fan);
            for (int i = 0; i < w.length; i++) {
                w[i] /= (float) Math.sqrt(fan);
            }
            return new Conv(c, m, kh, kw, strides, pads, dilations, groups, act, w, bias ? gaussian(r, m) : null);
        }

        Attributes attributes() {
            return Attributes.of("strides", strides, "pads", pads, "dilations", dilations, "groups", (long) groups, "activation", act);
        }

        int oh(int h) {
            return (int) ((h + pads[0] + pads[2] - dilations[0] * (kh - 1) - 1) / strides[0] + 1);
        }

        int ow(int w) {
            return (int) ((w + pads[1] + pads[3] - dilations[1] * (kw - 1) - 1) / strides[1] + 1);
        }

        Value add(GraphBuilder b, String name, Value x) {
            Value w = b.parameter(name + ".w", TensorData.ofFloats(new long[] {m, c / groups, kh, kw}, weights));
            return bias == null ? b.add1(OpRegistry.CONV2D, attributes(), name, x, w)
                    : b.add1(OpRegistry.CONV2D, attributes(), name, x, w, b.parameter(name + ".b", TensorData.ofFloats(new long[] {m}, bias)));
        }

        /**
         * Float64 convolution: act(b[m] + Σ over the group's channels and the taps inside the image of x w) (padding
         * contributes nothing), bound √Σ (w · input bound)² + sumError(taps, |b| + Σ |x w|), then the activation's.
         */
        Images apply(Images x) {
            int oh = oh(x.h);
            int ow = ow(x.w);
            int cg = c / groups;
            int mg = m / groups;
            double[] v = new double[x.n * m * oh * ow];
            double[] e = new double[v.length];
            for (int img = 0; img < x.n; img++) {
                for (int f = 0; f < m; f++) {
                    int group = f / mg;
                    for (int oy = 0; oy < oh; oy++) {
                        for (int ox = 0; ox < ow; ox++) {
                            double acc = bias == null ? 0 : bias[f];
                            double magnitude = Math.abs(acc);
                            double carried = 0;
                            for (int ci = 0; ci < cg; ci++) {
                                int channel = group * cg + ci;
                                for (int ky = 0; ky < kh; ky++) {
                                    int iy = (int) (oy * strides[0] - pads[0] + ky * dilations[0]);
                                    for (int kx = 0; kx < kw; kx++) {
                                        int ix = (int) (ox * strides[1] - pads[1] + kx * dilations[1]);
                                        if (iy < 0 || iy >= x.h || ix < 0 || ix >= x.w) {
                                            continue;
                                        }
                                        int at = ((img * x.c + channel) * x.h + iy) * x.w + ix;
                                        double wt = weights[((f * cg + ci) * kh + ky) * kw + kx];
                                        acc += x.value[at] * wt;
                                        magnitude += Math.abs(x.value[at] * wt);
                                        carried += wt * wt * x.bound[at] * x.bound[at];
                                    }
                                }
                            }
                            int o = ((img * m + f) * oh + oy) * ow + ox;
                            v[o] = activation(act, acc);
                            e[o] = activationError(act, acc, Math.sqrt(carried) + sumError(cg * kh * kw, magnitude));
                        }
                    }
                }
            }
            return new Images(v, e, x.n, m, oh, ow);
        }
    }

    /**
     * Float64 pooling over windows clipped to the image (padding never wins a max and, unless {@code countPads},
     * is not counted in an average). Max: the largest value, NaN when the window holds one (PyTorch), bound the
     * window's largest input bound (max is 1-Lipschitz). Average: the double mean, bound the mean input bound plus
     * sumError(window, Σ|x|) / divisor.
     */
    private static Images pool(Images x, boolean max, int kh, int kw, int sh, int sw, int pt, int pl, int pb, int pr, boolean countPads) {
        int oh = (x.h + pt + pb - kh) / sh + 1;
        int ow = (x.w + pl + pr - kw) / sw + 1;
        double[] v = new double[x.n * x.c * oh * ow];
        double[] e = new double[v.length];
        for (int plane = 0; plane < x.n * x.c; plane++) {
            for (int oy = 0; oy < oh; oy++) {
                for (int ox = 0; ox < ow; ox++) {
                    double acc = max ? Double.NEGATIVE_INFINITY : 0;
                    double magnitude = 0;
                    double bound = 0;
                    int count = 0;
                    for (int iy = Math.max(0, oy * sh - pt); iy < Math.min(x.h, oy * sh - pt + kh); iy++) {
                        for (int ix = Math.max(0, ox * sw - pl); ix < Math.min(x.w, ox * sw - pl + kw); ix++) {
                            int at = (plane * x.h + iy) * x.w + ix;
                            acc = max ? Math.max(acc, x.value[at]) : acc + x.value[at];
                            magnitude += Math.abs(x.value[at]);
                            bound = max ? Math.max(bound, x.bound[at]) : bound + x.bound[at];
                            count++;
                        }
                    }
                    int divisor = countPads ? kh * kw : count;
                    int o = (plane * oh + oy) * ow + ox;
                    v[o] = max ? acc : acc / divisor;
                    e[o] = max ? bound : (bound + sumError(count, magnitude)) / divisor;
                }
            }
        }
        return new Images(v, e, x.n, x.c, oh, ow);
    }

    private static void compare(Check check, float[] got, Images expected, int batch, boolean exact) {
        assertThat(got).as("outputs at batch %d", batch).hasSize(expected.value.length);
        int perImage = expected.c * expected.h * expected.w;
        for (int i = 0; i < got.length; i++) {
            String where = String.format("batch %d image %d channel %d pixel %d", batch, i / perImage, i % perImage / (expected.h * expected.w),
                    i % (expected.h * expected.w));
            if (exact) {
                check.exact(got[i], expected.value[i], where);
            } else {
                check.close(got[i], expected.value[i], expected.bound[i], where);
            }
        }
    }

    /** Random images with, when {@code nan}, a NaN in the middle of image 0's first channel and in image 400 if present. */
    private static float[] images(Random random, int n, int c, int h, int w, boolean nan) {
        float[] x = gaussian(random, n * c * h * w);
        if (nan) {
            x[(h / 2) * w + w / 2] = Float.NaN;
            if (n > 400) {
                x[400 * c * h * w + h * w + 1] = Float.NaN;
            }
        }
        return x;
    }

    /**
     * One conv2d node per geometry: 8 or more input channels per group take {@link DnnlConvKernel} (relu, GELU),
     * fewer take im2col + sgemm in {@link BlasConvKernel} (tanh, GELU, relu, none); so does a 16-channel convolution
     * whose windows lie entirely in the padding (which oneDNN crashed on; its outputs are the bias). Strides,
     * dilations, groups and asymmetric padding; a NaN pixel must make exactly the outputs whose window covers it NaN,
     * through relu too. Reference: the float64 convolution above.
     */
    @Test
    void convolutionsMatchAFloat64Reference() {
        Random random = new Random(201);
        boolean dnnl = Dnnl.enabled();
        // Each case: the convolution, the input's H and W, whether oneDNN runs it, whether a NaN input reaches an output.
        Object[][] cases = {
            {Conv.random(random, 8, 5, 3, 3, new long[] {1, 1}, new long[] {1, 1, 1, 1}, new long[] {1, 1}, 1, "relu", true), 7, 9, dnnl, true},
            {Conv.random(random, 16, 6, 3, 2, new long[] {2, 1}, new long[] {1, 0, 2, 1}, new long[] {2, 1}, 2, "gelu", false), 11, 13, dnnl, true},
            {Conv.random(random, 3, 4, 3, 3, new long[] {1, 1}, new long[] {1, 1, 1, 1}, new long[] {1, 1}, 1, "tanh", true), 9, 7, false, true},
            {Conv.random(random, 6, 3, 1, 3, new long[] {1, 2}, new long[] {0, 0, 0, 0}, new long[] {1, 2}, 3, "gelu", false), 5, 17, false, true},
            {Conv.random(random, 1, 3, 5, 5, new long[] {1, 1}, new long[] {2, 2, 2, 2}, new long[] {1, 1}, 1, "relu", true), 6, 5, false, true},
            {Conv.random(random, 16, 4, 2, 1, new long[] {1, 2}, new long[] {2, 1, 0, 1}, new long[] {1, 2}, 2, "none", true), 9, 1, false, false},
        };
        for (Object[] c : cases) {
            Conv conv = (Conv) c[0];
            int h = (int) c[1];
            int w = (int) c[2];
            GraphBuilder b = new GraphBuilder();
            b.output("y", conv.add(b, "conv", b.input("x", TensorType.float32(Shape.batched(conv.c, h, w)))));
            String what = String.format("conv2d %d -> %d on %dx%d, kernel %dx%d, strides %s, pads %s, dilations %s, groups %d, %s%s", conv.c, conv.m,
                    h, w, conv.kh, conv.kw, java.util.Arrays.toString(conv.strides), java.util.Arrays.toString(conv.pads),
                    java.util.Arrays.toString(conv.dilations), conv.groups, conv.act, conv.bias == null ? "" : " + bias");
            try (Compiled compiled = new Compiled(b.build()); CpuExecutor executor = compiled.executor(513)) {
                assertThat(kernels(executor)).as(what).containsExactly((boolean) c[3] ? DnnlConvKernel.class : BlasConvKernel.class);
                Check check = new Check(what);
                for (int batch : BATCHES) {
                    float[] x = images(random, batch, conv.c, h, w, true);
                    compare(check, Float64Reference.run(executor, batch, 0, x), conv.apply(Images.of(x, batch, conv.c, h, w)), batch, false);
                }
                check.done((boolean) c[4]);
            }
        }
    }

    /**
     * max_pool2d on {@link DnnlMaxPoolKernel} where oneDNN's padding can express the window layout (and, with
     * {@code kiln.onednn.noPool}, the same on {@link PoolKernel}), on {@link PoolKernel} where it cannot (9x11 in 2x2
     * windows leaves a row and a column out); avg_pool2d (always {@link PoolKernel}) with and without the padding in
     * the divisor. Each batch once clean and once with NaN inputs (which oneDNN's max would drop: its screen must send
     * the batch to PoolKernel). Max is compared bit for bit (it selects an input), averages within their rounding.
     */
    @Test
    void poolingMatchesAFloat64Reference() {
        Random random = new Random(202);
        boolean dnnl = Dnnl.enabled();
        // {max (1) or average (0), H, W, kh, kw, sh, sw, pt, pl, pb, pr, count_include_pad, oneDNN by default}
        int[][] cases = {
            {1, 9, 11, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0},
            {1, 10, 12, 2, 2, 2, 2, 0, 0, 0, 0, 0, 1},
            {1, 9, 11, 3, 3, 2, 2, 1, 1, 1, 1, 0, 1},
            {1, 5, 17, 3, 2, 1, 3, 2, 0, 1, 1, 0, 1},
            {0, 9, 11, 3, 3, 2, 2, 1, 1, 1, 1, 0, 0},
            {0, 9, 11, 3, 3, 2, 2, 1, 1, 1, 1, 1, 0},
            {0, 9, 11, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0},
        };
        int channels = 3;
        for (int[] p : cases) {
            boolean max = p[0] == 1;
            Attributes attributes = Attributes.of("kernel", new long[] {p[3], p[4]}, "strides", new long[] {p[5], p[6]},
                    "pads", new long[] {p[7], p[8], p[9], p[10]}, "count_include_pad", (long) p[11]);
            GraphBuilder b = new GraphBuilder();
            b.output("y", b.add1(max ? OpRegistry.MAX_POOL2D : OpRegistry.AVG_POOL2D, attributes, "pool",
                    b.input("x", TensorType.float32(Shape.batched(channels, p[1], p[2])))));
            try (Compiled compiled = new Compiled(b.build())) {
                for (boolean switchedOff : max ? new boolean[] {false, true} : new boolean[] {false}) {
                    String what = String.format("%s %dx%d window %dx%d strides %d,%d pads %d,%d,%d,%d%s%s", max ? "max_pool2d" : "avg_pool2d", p[1], p[2],
                            p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], max ? "" : " count_include_pad " + p[11], switchedOff ? " (kiln.onednn.noPool)" : "");
                    try (CpuExecutor executor = switchedOff ? compiled.executor(513, "kiln.onednn.noPool", "true") : compiled.executor(513)) {
                        assertThat(kernels(executor)).as(what).containsExactly(p[12] == 1 && dnnl && !switchedOff ? DnnlMaxPoolKernel.class : PoolKernel.class);
                        Check check = new Check(what);
                        for (int batch : BATCHES) {
                            for (boolean nan : new boolean[] {false, true}) {
                                float[] x = images(random, batch, channels, p[1], p[2], nan);
                                Images expected = pool(Images.of(x, batch, channels, p[1], p[2]), max, p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11] == 1);
                                compare(check, Float64Reference.run(executor, batch, 0, x), expected, batch, max);
                            }
                        }
                        check.done(true);
                    }
                }
            }
        }
    }

    /**
     * conv 1 -> 8 (3x3, pad 1, relu) -> max pool 3x3 stride 2 pad 1 -> conv 8 -> 16 (3x3, relu) -> global average pool,
     * on 13x11 images: one {@link DnnlChainKernel} of 64 images per chunk (513 images: 8 chunks and a last one of 1).
     * A batch holding NaN runs node by node (counted in fallbacks) and must give NaN for exactly that image's outputs;
     * with {@code kiln.onednn.noChain} every batch runs node by node. Reference: the float64 layers above, bounds
     * carried from layer to layer.
     */
    @Test
    void layerChainMatchesAFloat64Reference() {
        Assumptions.assumeTrue(Dnnl.enabled(), "layer chains need oneDNN");
        Random random = new Random(203);
        Conv conv1 = Conv.random(random, 1, 8, 3, 3, new long[] {1, 1}, new long[] {1, 1, 1, 1}, new long[] {1, 1}, 1, "relu", true);
        Conv conv2 = Conv.random(random, 8, 16, 3, 3, new long[] {1, 1}, new long[] {0, 0, 0, 0}, new long[] {1, 1}, 1, "relu", true);
        GraphBuilder b = new GraphBuilder();
        Value h = conv1.add(b, "conv1", b.input("x", TensorType.float32(Shape.batched(1, 13, 11))));
        h = b.add1(OpRegistry.MAX_POOL2D, Attributes.of("kernel", new long[] {3, 3}, "strides", new long[] {2, 2}, "pads", new long[] {1, 1, 1, 1}), "pool", h);
        h = conv2.add(b, "conv2", h);
        b.output("y", b.add1(OpRegistry.REDUCE_MEAN, Attributes.of("axes", new long[] {2, 3}), "gap", h));
        try (Compiled compiled = new Compiled(b.build())) {
            for (boolean switchedOff : new boolean[] {false, true}) {
                String what = "conv-relu-pool-conv-relu-mean on 13x11" + (switchedOff ? " (kiln.onednn.noChain)" : ", one chain");
                try (CpuExecutor executor = switchedOff ? compiled.executor(513, DnnlChainKernel.DISABLE, "true") : compiled.executor(513)) {
                    DnnlChainKernel chain = null;
                    if (switchedOff) {
                        assertThat(kernels(executor)).as(what).doesNotContain(DnnlChainKernel.class).hasSize(4);
                    } else {
                        assertThat(kernels(executor)).as(what).containsExactly(DnnlChainKernel.class);
                        chain = (DnnlChainKernel) executor.schedule().get(0);
                        assertThat(chain.steps()).extracting(s -> s.node().op()).containsExactly("conv2d", "max_pool2d", "conv2d", "reduce_mean");
                        assertThat(chain.chunk()).isEqualTo(64);
                    }
                    Check check = new Check(what);
                    int nanBatches = 0;
                    for (int batch : BATCHES) {
                        for (boolean nan : new boolean[] {false, true}) {
                            float[] x = images(random, batch, 1, 13, 11, nan);
                            Images expected = conv1.apply(Images.of(x, batch, 1, 13, 11));
                            expected = pool(expected, true, 3, 3, 2, 2, 1, 1, 1, 1, false);
                            // The global average pool: one 5x4 window over conv2's 5x4 output.
                            expected = pool(conv2.apply(expected), false, 5, 4, 1, 1, 0, 0, 0, 0, false);
                            compare(check, Float64Reference.run(executor, batch, 0, x), expected, batch, false);
                            nanBatches += nan ? 1 : 0;
                            if (chain != null) {
                                assertThat(chain.fallbacks()).as("batches run node by node").isEqualTo(nanBatches);
                            }
                        }
                    }
                    check.done(true);
                }
            }
        }
    }
}
