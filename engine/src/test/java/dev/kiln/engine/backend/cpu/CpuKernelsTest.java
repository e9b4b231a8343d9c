package dev.kiln.engine.backend.cpu;

import dev.kiln.engine.backend.Kernel;
import dev.kiln.engine.backend.Slot;
import dev.kiln.engine.ir.Attributes;
import dev.kiln.engine.ir.TensorType;
import dev.kiln.engine.ops.OpRegistry;
import dev.kiln.engine.tensor.Shape;
import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.List;
import java.util.Random;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The CPU backend's pooling, unary and reduction kernels against the ops' reference kernels (a second, plainer
 * implementation), on random inputs of odd sizes, with padding, zeros of both signs, NaN and a non-zero buffer offset.
 */
class CpuKernelsTest {
    /** Seeded (override with -Dkiln.test.seed to explore more random geometries). */
    private static final Random RANDOM = new Random(Long.getLong("kiln.test.seed", 11));

    private static FloatBuffer direct(int offset, float[] values) {
        FloatBuffer b = ByteBuffer.allocateDirect((offset + values.length) * 4).order(ByteOrder.nativeOrder()).asFloatBuffer();
        for (int i = 0; i < values.length; i++) {
            b.put(offset + i, values[i]);
        }
        return b;
    }

    private static float[] values(int n, boolean specials) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) RANDOM.nextGaussian();
            if (specials && RANDOM.nextInt(8) == 0) {
                v[i] = RANDOM.nextBoolean() ? 0f : -0f;
            }
        }
        if (specials && n > 5) {
            v[RANDOM.nextInt(n)] = Float.NaN;
        }
        return v;
    }

    /** Runs {@code kernel} and the op's reference kernel on the same input; returns {fast, reference}. */
    private static float[][] both(String op, Attributes attributes, long[] shape, float[] x, KernelFactory fast) {
        TensorType in = TensorType.float32(Shape.of(shape));
        TensorType outType = OpRegistry.get(op).inferTypes(List.of(in), attributes).get(0);
        int outCount = (int) outType.shape().elementCount();
        Slot xs = new Slot(direct(3, x), 3, in);
        Slot fastOut = new Slot(direct(5, new float[outCount]), 5, outType);
        Slot refOut = new Slot(FloatBuffer.allocate(outCount), 0, outType);
        Kernel k = fast.create(xs, fastOut);
        assertThat(k).as("a specialised kernel for %s", op).isNotNull();
        k.run(shape[0]);
        k.close();
        OpRegistry.get(op).newKernel(new Slot[] {new Slot(FloatBuffer.wrap(x), 0, in)}, new Slot[] {refOut}, attributes).run(shape[0]);
        float[] a = new float[outCount];
        fastOut.buffer().get(5, a, 0, outCount);
        return new float[][] {a, refOut.buffer().array()};
    }

    private interface KernelFactory {
        Kernel create(Slot x, Slot out);
    }

    private static void assertSame(float[][] r, double rtol, String what) {
        for (int i = 0; i < r[1].length; i++) {
            float a = r[0][i];
            float e = r[1][i];
            if (Float.isNaN(e)) {
                assertThat(a).as("%s element %d", what, i).isNaN();
            } else {
                assertThat((double) a).as("%s element %d", what, i).isCloseTo(e, org.assertj.core.data.Offset.offset(1e-6 + rtol * Math.abs(e)));
            }
        }
    }

    @Test
    void poolingMatchesTheReferenceKernels() {
        long[][] shapes = {{1, 1, 1, 1}, {3, 2, 5, 7}, {2, 3, 17, 13}};
        // {2, 2, 2, 2, 0, 0, 1, 1}: the 2x2 shape with bottom/right padding, which must not take the unpadded fast path.
        long[][] geometries = {{1, 1, 1, 1, 0, 0, 0, 0}, {2, 2, 2, 2, 0, 0, 0, 0}, {2, 2, 2, 2, 0, 0, 1, 1}, {3, 3, 2, 2, 1, 1, 1, 1}, {3, 2, 1, 3, 2, 0, 1, 1}};
        int throughOneDnn = 0;
        for (long[] shape : shapes) {
            for (long[] g : geometries) {
                if (g[0] > shape[2] + g[4] + g[6] || g[1] > shape[3] + g[5] + g[7]) {
                    continue;
                }
                Attributes base = Attributes.of("kernel", new long[] {g[0], g[1]}, "strides", new long[] {g[2], g[3]}, "pads", new long[] {g[4], g[5], g[6], g[7]});
                float[] x = values((int) (shape[0] * shape[1] * shape[2] * shape[3]), true);
                String what = java.util.Arrays.toString(shape) + " " + base;
                assertSame(both(OpRegistry.MAX_POOL2D, base, shape, x, (xs, out) -> new PoolKernel(OpRegistry.MAX_POOL2D, xs, out, base)), 0, "max " + what);
                Slot probeSlot = new Slot(direct(0, x), 0, TensorType.float32(Shape.of(shape)));
                Kernel probe = DnnlMaxPoolKernel.create(probeSlot, probeSlot, base);
                if (probe != null) {
                    probe.close();
                    throughOneDnn++;
                    // oneDNN's pooling on finite inputs, and on x (which holds a NaN when large enough: the fallback path).
                    float[] finite = values(x.length, false);
                    assertSame(both(OpRegistry.MAX_POOL2D, base, shape, finite, (xs, out) -> DnnlMaxPoolKernel.create(xs, out, base)), 0, "oneDNN max " + what);
                    assertSame(both(OpRegistry.MAX_POOL2D, base, shape, x, (xs, out) -> DnnlMaxPoolKernel.create(xs, out, base)), 0, "oneDNN max, NaN " + what);
                }
                for (long count : new long[] {0, 1}) {
                    Attributes avg = base.with("count_include_pad", count);
                    assertSame(both(OpRegistry.AVG_POOL2D, avg, shape, x, (xs, out) -> new PoolKernel(OpRegistry.AVG_POOL2D, xs, out, avg)), 1e-5,
                            "avg " + count + " " + what);
                }
            }
        }
        assertThat(throughOneDnn).as("max pooling cases oneDNN ran").isGreaterThan(Dnnl.enabled() ? 5 : -1);
        if (Dnnl.enabled()) {
            // Large enough for the oneDNN reduction that screens for NaN (more than NanScreen.SMALL floats), without
            // and then with a NaN (which must send the batch to PoolKernel and come out NaN in its window only).
            long[] shape = {4, 8, 28, 28};
            Attributes pool = Attributes.of("kernel", new long[] {2, 2}, "strides", new long[] {2, 2});
            float[] x = values(4 * 8 * 28 * 28, false);
            assertThat((long) x.length).isGreaterThan(DnnlMaxPoolKernel.NanScreen.SMALL);
            assertSame(both(OpRegistry.MAX_POOL2D, pool, shape, x, (xs, out) -> DnnlMaxPoolKernel.create(xs, out, pool)), 0, "oneDNN max, large");
            x[12345] = Float.NaN;
            float[][] r = both(OpRegistry.MAX_POOL2D, pool, shape, x, (xs, out) -> DnnlMaxPoolKernel.create(xs, out, pool));
            assertSame(r, 0, "oneDNN max, large with a NaN");
            assertThat(java.util.stream.IntStream.range(0, r[0].length).filter(i -> Float.isNaN(r[0][i])).count()).isEqualTo(1);
        }
    }

    @Test
    void unaryFunctionsMatchTheReferenceKernelsExactly() {
        for (String op : new String[] {"relu", "sigmoid", "tanh", OpRegistry.EXP, OpRegistry.NEG}) {
            for (int n : new int[] {1, 3, 17, 513, 4096 + 7}) {
                float[] x = values(n, true);
                float[][] r = both(op, Attributes.EMPTY, new long[] {n}, x, (xs, out) -> ElementwiseKernels.unary(op, xs, out));
                for (int i = 0; i < n; i++) {
                    assertThat(Float.floatToIntBits(r[0][i])).as("%s(%s)", op, x[i]).isEqualTo(Float.floatToIntBits(r[1][i]));
                }
            }
        }
    }

    @Test
    void denseEpiloguesMatchTheExactFormulas() {
        // rows x n block plus a bias row, through the vector and the scalar epilogue, for each activation, against
        // the reference activation (GELU exact, via the erf series) in double.
        int rows = 7;
        int n = 37;
        float[] block = values(rows * n, false);
        for (int i = 0; i < 40; i++) {
            block[i] = (i - 20) / 2f;
        }
        float[] bias = values(n, false);
        for (dev.kiln.engine.ops.Activation act : new dev.kiln.engine.ops.Activation[] {dev.kiln.engine.ops.Activation.NONE,
                dev.kiln.engine.ops.Activation.RELU, dev.kiln.engine.ops.Activation.GELU, dev.kiln.engine.ops.Activation.TANH}) {
            for (Epilogue e : new Epilogue[] {Epilogue.create(act), new Epilogue.ScalarEpilogue(act)}) {
                ByteBuffer out = ByteBuffer.allocateDirect(8 + block.length * 4).order(ByteOrder.LITTLE_ENDIAN);
                ByteBuffer b = ByteBuffer.allocateDirect(4 + n * 4).order(ByteOrder.LITTLE_ENDIAN);
                for (int i = 0; i < block.length; i++) {
                    out.putFloat(8 + 4 * i, block[i]);
                }
                for (int j = 0; j < n; j++) {
                    b.putFloat(4 + 4 * j, bias[j]);
                }
                e.apply(out, 8, b, 4, rows, n);
                for (int i = 0; i < block.length; i++) {
                    float x = block[i] + bias[i % n];
                    double expected = act == dev.kiln.engine.ops.Activation.GELU
                            ? 0.5 * x * (1 + dev.kiln.engine.ops.MathFunctions.erf(x * 0.7071067811865476)) : act.apply(x);
                    assertThat((double) out.getFloat(8 + 4 * i)).as("%s %s element %d (x = %s)", act, e.getClass().getSimpleName(), i, x)
                            .isCloseTo(expected, org.assertj.core.data.Offset.offset(5e-7 * Math.abs(expected) + 1e-7));
                }
            }
        }
    }

    @Test
    void softmaxAndTransposeMatchTheReferenceKernels() {
        // {600, 16}: more rows than one bulk chunk holds (256 of 16); rows of 16, 32, 64 stay in vector lanes.
        for (long[] shape : new long[][] {{1, 1}, {3, 17}, {2, 4, 16, 16}, {5, 513}, {600, 16}, {9, 32}, {300, 64}}) {
            float[] x = values((int) java.util.Arrays.stream(shape).reduce(1, (a, b) -> a * b), true);
            if (x.length >= 48 && shape[shape.length - 1] >= 16) {
                // Infinities: a row with +Inf is all NaN in PyTorch, a row with -Inf keeps a 0 there; a row of only -Inf is NaN.
                int n = (int) shape[shape.length - 1];
                x[n / 2] = Float.POSITIVE_INFINITY;
                x[n + 1] = Float.NEGATIVE_INFINITY;
                java.util.Arrays.fill(x, 2 * n, 3 * n, Float.NEGATIVE_INFINITY);
            }
            Attributes last = Attributes.of("axis", -1L);
            float[][] r = both(OpRegistry.SOFTMAX, last, shape, x, (xs, out) -> RowKernels.softmax(xs, out, last));
            assertSame(r, 2e-6, "softmax " + java.util.Arrays.toString(shape));
            if (Dnnl.enabled()) {
                // oneDNN's softmax (what the backend picks when it loads); rows with a NaN must come out all NaN.
                float[][] d = both(OpRegistry.SOFTMAX, last, shape, x, (xs, out) -> DnnlSoftmaxKernel.create(xs, out, last));
                assertSame(d, 2e-6, "oneDNN softmax " + java.util.Arrays.toString(shape));
            }
        }
        Slot notLast = new Slot(FloatBuffer.allocate(6), 0, TensorType.float32(Shape.of(new long[] {2, 3})));
        assertThat(RowKernels.softmax(notLast, notLast, Attributes.of("axis", 0L))).isNull();
        // Ranks 1-4 run as nested loops (contiguous runs by arraycopy), rank 5 through the odometer.
        long[][][] cases = {{{2, 3}, {1, 0}}, {{2, 4, 16, 8}, {0, 2, 1, 3}}, {{3, 5, 7}, {2, 0, 1}}, {{4}, {0}}, {{2, 3, 4, 5}, {3, 2, 1, 0}},
            {{3, 4, 5}, {1, 0, 2}}, {{2, 3, 4, 5}, {0, 1, 3, 2}}, {{2, 3, 2, 3, 2}, {4, 1, 3, 0, 2}}, {{2, 3, 4, 5, 2}, {0, 2, 1, 3, 4}}};
        for (long[][] c : cases) {
            float[] x = values((int) java.util.Arrays.stream(c[0]).reduce(1, (a, b) -> a * b), false);
            Attributes perm = Attributes.of("perm", c[1]);
            float[][] r = both(OpRegistry.TRANSPOSE, perm, c[0], x, (xs, out) -> RowKernels.transpose(xs, out, perm));
            assertThat(r[0]).as("transpose %s %s", java.util.Arrays.toString(c[0]), java.util.Arrays.toString(c[1])).containsExactly(r[1]);
        }
    }

    @Test
    void splitMatchesTheReferenceKernelOnRandomShapes() {
        for (int trial = 0; trial < 60; trial++) {
            int rank = 2 + RANDOM.nextInt(3);
            long[] shape = new long[rank];
            for (int d = 0; d < rank; d++) {
                shape[d] = 1 + RANDOM.nextInt(6);
            }
            int axis = 1 + RANDOM.nextInt(rank - 1);
            int pieces = 1 + RANDOM.nextInt((int) shape[axis]);
            long[] sizes = new long[pieces];
            long left = shape[axis];
            for (int k = 0; k < pieces - 1; k++) {
                sizes[k] = 1 + RANDOM.nextInt((int) (left - (pieces - 1 - k)));
                left -= sizes[k];
            }
            sizes[pieces - 1] = left;
            Attributes a = Attributes.of("axis", (long) (RANDOM.nextBoolean() ? axis : axis - rank), "sizes", sizes);
            TensorType in = TensorType.float32(Shape.of(shape));
            List<TensorType> outTypes = OpRegistry.get(OpRegistry.SPLIT).inferTypes(List.of(in), a);
            float[] x = values((int) in.shape().elementCount(), true);
            Slot[] fast = new Slot[pieces];
            Slot[] ref = new Slot[pieces];
            for (int k = 0; k < pieces; k++) {
                int count = (int) outTypes.get(k).shape().elementCount();
                fast[k] = new Slot(direct(2, new float[count]), 2, outTypes.get(k));
                ref[k] = new Slot(FloatBuffer.allocate(count), 0, outTypes.get(k));
            }
            RowKernels.split(new Slot(direct(1, x), 1, in), fast, a).run(shape[0]);
            OpRegistry.get(OpRegistry.SPLIT).newKernel(new Slot[] {new Slot(FloatBuffer.wrap(x), 0, in)}, ref, a).run(shape[0]);
            for (int k = 0; k < pieces; k++) {
                float[] got = new float[ref[k].buffer().capacity()];
                fast[k].buffer().get(2, got, 0, got.length);
                assertThat(got).as("split %s %s piece %d", java.util.Arrays.toString(shape), a, k).containsExactly(ref[k].buffer().array());
            }
        }
    }

    @Test
    void layerNormMatchesTheReferenceKernel() {
        for (long[] shape : new long[][] {{1, 1}, {3, 17}, {64, 16, 32}, {2, 513}, {5, 3}, {4, 7}, {2, 6}}) {
            int d = (int) shape[shape.length - 1];
            int count = (int) java.util.Arrays.stream(shape).reduce(1, (a, b) -> a * b);
            float[] x = values(count, false);
            float[] g = values(d, false);
            float[] b = values(d, false);
            TensorType xt = TensorType.float32(Shape.of(shape));
            TensorType dt = TensorType.float32(Shape.of(new long[] {d}));
            Attributes eps = Attributes.of("epsilon", 1e-5);
            Slot fastOut = new Slot(direct(3, new float[count]), 3, xt);
            RowKernels.layerNorm(new Slot(direct(1, x), 1, xt), new Slot(direct(0, g), 0, dt), new Slot(direct(2, b), 2, dt), fastOut, eps).run(shape[0]);
            Slot refOut = new Slot(FloatBuffer.allocate(count), 0, xt);
            OpRegistry.get(OpRegistry.LAYER_NORM).newKernel(new Slot[] {new Slot(FloatBuffer.wrap(x), 0, xt), new Slot(FloatBuffer.wrap(g), 0, dt),
                    new Slot(FloatBuffer.wrap(b), 0, dt)}, new Slot[] {refOut}, eps).run(shape[0]);
            float[] fast = new float[count];
            fastOut.buffer().get(3, fast, 0, count);
            assertThat(fast).as("layer_norm %s", java.util.Arrays.toString(shape)).containsExactly(refOut.buffer().array());
        }
    }

    /**
     * add/sub/mul/div against the reference kernel, bit for bit (the same float operation per element): operands of
     * the output's size, scalars, rows repeated along the output (either side), odd sizes around the chunk length,
     * NaN, infinities and zeros of both signs, non-zero offsets, and the output written over an input (in place).
     */
    @Test
    void binaryKernelsMatchTheReferenceBitForBit() {
        String[] ops = {OpRegistry.ADD, OpRegistry.SUB, OpRegistry.MUL, OpRegistry.DIV};
        long[][] outs = {{1, 1}, {3, 5, 7}, {2, 4097}, {5, 16, 32}, {1, 3}};
        int checked = 0;
        for (long[] outDims : outs) {
            long[] suffix = java.util.Arrays.copyOfRange(outDims, 1, outDims.length);
            long[] lastOnly = {outDims[outDims.length - 1]};
            long[] onesThenLast = {1, outDims[outDims.length - 1]};
            for (long[] other : new long[][] {outDims, {}, {1}, suffix, lastOnly, onesThenLast}) {
                for (String op : ops) {
                    for (boolean otherFirst : new boolean[] {false, true}) {
                        for (boolean inPlace : new boolean[] {false, true}) {
                            Shape outShape = Shape.of(outDims);
                            Shape otherShape = Shape.of(other);
                            TensorType ft = TensorType.float32(outShape);
                            TensorType ot = TensorType.float32(otherShape);
                            int n = (int) outShape.elementCount();
                            int m = (int) otherShape.elementCount();
                            float[] full = values(n, true);
                            float[] rep = values(m, true);
                            if (n > 8) {
                                full[1] = Float.POSITIVE_INFINITY;
                                full[2] = Float.NEGATIVE_INFINITY;
                            }
                            Slot fullSlot = new Slot(direct(2, full), 2, ft);
                            Slot otherSlot = new Slot(direct(1, rep), 1, ot);
                            Slot out = inPlace ? fullSlot : new Slot(direct(4, new float[n]), 4, ft);
                            Slot a = otherFirst ? otherSlot : fullSlot;
                            Slot b = otherFirst ? fullSlot : otherSlot;
                            Kernel k = ElementwiseKernels.binary(op, a, b, out);
                            assertThat(k).as("%s of %s and %s", op, a.type(), b.type()).isNotNull();
                            k.run(outDims[0]);
                            float[] got = new float[n];
                            out.buffer().get(out.offset(), got, 0, n);
                            Slot ra = new Slot(FloatBuffer.wrap(otherFirst ? rep : full), 0, otherFirst ? ot : ft);
                            Slot rb = new Slot(FloatBuffer.wrap(otherFirst ? full : rep), 0, otherFirst ? ft : ot);
                            Slot refOut = new Slot(FloatBuffer.allocate(n), 0, ft);
                            OpRegistry.get(op).newKernel(new Slot[] {ra, rb}, new Slot[] {refOut}, Attributes.EMPTY).run(outDims[0]);
                            float[] want = refOut.buffer().array();
                            for (int i = 0; i < n; i++) {
                                assertThat(Float.floatToIntBits(got[i])).as("%s of %s and %s%s, element %d: %s vs %s", op, a.type(), b.type(),
                                        inPlace ? " in place" : "", i, got[i], want[i]).isEqualTo(Float.floatToIntBits(want[i]));
                            }
                            checked++;
                        }
                    }
                }
            }
        }
        assertThat(checked).isEqualTo(outs.length * 6 * 4 * 2 * 2);
        // A column (not a suffix) is left to the reference kernel.
        TensorType ft = TensorType.float32(Shape.of(3, 4));
        TensorType column = TensorType.float32(Shape.of(3, 1));
        assertThat(ElementwiseKernels.binary(OpRegistry.ADD, new Slot(direct(0, new float[12]), 0, ft), new Slot(direct(0, new float[3]), 0, column),
                new Slot(direct(0, new float[12]), 0, ft))).isNull();
        assertThat(ElementwiseKernels.binary(OpRegistry.POW, new Slot(direct(0, new float[12]), 0, ft), new Slot(direct(0, new float[12]), 0, ft),
                new Slot(direct(0, new float[12]), 0, ft))).isNull();
    }

    @Test
    void erfAndGeluKernelsAgreeWithTheReferenceSeriesWithin3e7() {
        for (String op : new String[] {OpRegistry.ERF, "gelu"}) {
            float[] x = values(4096 + 7, true);
            for (int i = 0; i < 64; i++) {
                x[i] = (i - 32) / 8f;
            }
            float[][] r = both(op, Attributes.EMPTY, new long[] {x.length}, x, (xs, out) -> ElementwiseKernels.unary(op, xs, out));
            assertSame(r, op.equals("gelu") ? 5e-7 : 3e-7, op);
        }
    }

    @Test
    void contiguousReductionsMatchADoubleSum() {
        long[] shape = {3, 5, 7, 17};
        for (String op : new String[] {OpRegistry.REDUCE_MEAN, OpRegistry.REDUCE_SUM}) {
            for (long[] axes : new long[][] {{2, 3}, {-1}, {1, 2, 3}, {1}, {1, 2}, {-2}}) {
                for (long keep : new long[] {0, 1}) {
                    Attributes a = Attributes.of("axes", axes, "keepdims", keep);
                    float[] x = values(3 * 5 * 7 * 17, false);
                    float[][] r = both(op, a, shape, x, (xs, out) -> ElementwiseKernels.contiguousReduce(op, xs, out, a));
                    // Expected in double straight from the index arithmetic: output (i0, kept...) sums x over the axes.
                    boolean[] red = new boolean[4];
                    for (long ax : axes) {
                        red[(int) (ax < 0 ? ax + 4 : ax)] = true;
                    }
                    java.util.Map<Integer, double[]> sums = new java.util.TreeMap<>();
                    int count = 1;
                    for (int d = 0; d < 4; d++) {
                        count *= red[d] ? (int) shape[d] : 1;
                    }
                    for (int i = 0; i < x.length; i++) {
                        int rest = i;
                        int key = 0;
                        int[] idx = new int[4];
                        for (int d = 3; d >= 0; d--) {
                            idx[d] = rest % (int) shape[d];
                            rest /= (int) shape[d];
                        }
                        for (int d = 0; d < 4; d++) {
                            key = key * (int) shape[d] + (red[d] ? 0 : idx[d]);
                        }
                        double[] acc = sums.computeIfAbsent(key, k -> new double[2]);
                        acc[0] += x[i];
                        acc[1] += Math.abs(x[i]);
                    }
                    int o = 0;
                    for (double[] acc : sums.values()) {
                        double exact = op.equals(OpRegistry.REDUCE_MEAN) ? acc[0] / count : acc[0];
                        double magnitude = op.equals(OpRegistry.REDUCE_MEAN) ? acc[1] / count : acc[1];
                        assertThat((double) r[0][o]).as("%s %s output %d (fast)", op, a, o).isCloseTo(exact, org.assertj.core.data.Offset.offset(1e-7 * magnitude + 1e-9));
                        assertThat((double) r[1][o]).as("%s %s output %d (reference)", op, a, o).isCloseTo(exact, org.assertj.core.data.Offset.offset(count * 6e-8 * magnitude));
                        o++;
                    }
                    assertThat(o).isEqualTo(r[0].length);
                }
            }
        }
        // Reducing the first axis, or axes that are not contiguous: left to the reference kernel.
        Slot x = new Slot(FloatBuffer.allocate(6), 0, TensorType.float32(Shape.of(new long[] {2, 3})));
        assertThat(ElementwiseKernels.contiguousReduce(OpRegistry.REDUCE_SUM, x, x, Attributes.of("axes", new long[] {0}))).isNull();
        Slot y = new Slot(FloatBuffer.allocate(24), 0, TensorType.float32(Shape.of(new long[] {2, 3, 4})));
        assertThat(ElementwiseKernels.contiguousReduce(OpRegistry.REDUCE_SUM, y, y, Attributes.of("axes", new long[] {0, 2}))).isNull();
    }

    @Test
    void im2colAndOneDnnConvolutionsMatchTheReferenceKernelOnRandomGeometries() {
        int ranOnOneDnn = 0;
        // Odd trials through oneDNN (any channel count: the kernel itself, not the backend's choice), even ones
        // through im2col + sgemm; every fourth with a NaN in the input, which must reach the same outputs.
        for (int trial = 0; trial < 304; trial++) {
            int groups = 1 + RANDOM.nextInt(2);
            int c = groups * (1 + RANDOM.nextInt(3));
            int m = groups * (1 + RANDOM.nextInt(3));
            int kh = 1 + RANDOM.nextInt(3);
            int kw = 1 + RANDOM.nextInt(3);
            long[] strides = {1 + RANDOM.nextInt(3), 1 + RANDOM.nextInt(3)};
            long[] dilations = {1 + RANDOM.nextInt(2), 1 + RANDOM.nextInt(2)};
            long[] pads = {RANDOM.nextInt(3), RANDOM.nextInt(3), RANDOM.nextInt(3), RANDOM.nextInt(3)};
            // The last trials use 40x40 images, 1,600 output pixels: two images per GEMM, so a batch of up to 5 runs
            // in several chunks, the last one short.
            boolean large = trial >= 300;
            int h = large ? 40 : 1 + RANDOM.nextInt(9);
            int w = large ? 40 : 1 + RANDOM.nextInt(9);
            if (large) {
                strides[0] = 1;
                strides[1] = 1;
                pads[0] = 1;
                pads[1] = 1;
                pads[2] = 1;
                pads[3] = 1;
                dilations[0] = 1;
                dilations[1] = 1;
            }
            if (h + pads[0] + pads[2] < (kh - 1) * dilations[0] + 1 || w + pads[1] + pads[3] < (kw - 1) * dilations[1] + 1) {
                continue;
            }
            int n = large ? 3 + trial % 3 : 1 + RANDOM.nextInt(3);
            boolean withBias = RANDOM.nextBoolean();
            String activation = new String[] {"none", "relu", "gelu", "tanh"}[RANDOM.nextInt(4)];
            Attributes a = Attributes.of("strides", strides, "pads", pads, "dilations", dilations, "groups", (long) groups, "activation", activation);
            TensorType xt = TensorType.float32(Shape.of(new long[] {n, c, h, w}));
            TensorType wt = TensorType.float32(Shape.of(new long[] {m, c / groups, kh, kw}));
            TensorType bt = TensorType.float32(Shape.of(new long[] {m}));
            List<TensorType> types = withBias ? List.of(xt, wt, bt) : List.of(xt, wt);
            TensorType outType = OpRegistry.get(OpRegistry.CONV2D).inferTypes(types, a).get(0);
            float[] x = values(n * c * h * w, false);
            float[] weights = values(m * (c / groups) * kh * kw, false);
            float[] bias = values(m, false);
            int outCount = (int) outType.shape().elementCount();
            Slot[] fastIn = withBias ? new Slot[] {new Slot(direct(2, x), 2, xt), new Slot(direct(1, weights), 1, wt), new Slot(direct(0, bias), 0, bt)}
                    : new Slot[] {new Slot(direct(2, x), 2, xt), new Slot(direct(1, weights), 1, wt)};
            if (trial % 4 == 3) {
                x[RANDOM.nextInt(x.length)] = Float.NaN;
                fastIn[0] = new Slot(direct(2, x), 2, xt);
            }
            // Windows entirely in padding stay on im2col (oneDNN crashes on them; DnnlConvKernel.geometryFits).
            boolean dnnl = trial % 2 == 1 && Dnnl.enabled()
                    && DnnlConvKernel.geometryFits(dev.kiln.engine.ops.Conv2dOp.geometry(xt.shape(), wt.shape(), a));
            if (dnnl) {
                ranOnOneDnn++;
            }
            Slot fastOut = new Slot(direct(4, new float[outCount]), 4, outType);
            try (Kernel kernel = dnnl ? new DnnlConvKernel(fastIn, fastOut, a) : new BlasConvKernel(fastIn, fastOut, a)) {
                kernel.run(n);
            } catch (RuntimeException e) {
                throw new AssertionError((dnnl ? "oneDNN " : "im2col ") + "conv " + a + " x " + xt + " w " + wt, e);
            }
            Slot[] refIn = withBias ? new Slot[] {new Slot(FloatBuffer.wrap(x), 0, xt), new Slot(FloatBuffer.wrap(weights), 0, wt), new Slot(FloatBuffer.wrap(bias), 0, bt)}
                    : new Slot[] {new Slot(FloatBuffer.wrap(x), 0, xt), new Slot(FloatBuffer.wrap(weights), 0, wt)};
            Slot refOut = new Slot(FloatBuffer.allocate(outCount), 0, outType);
            OpRegistry.get(OpRegistry.CONV2D).newKernel(refIn, new Slot[] {refOut}, a).run(n);
            float[] fast = new float[outCount];
            fastOut.buffer().get(4, fast, 0, outCount);
            assertSame(new float[][] {fast, refOut.buffer().array()}, 1e-4, (dnnl ? "oneDNN " : "im2col ") + "conv " + a + " x " + xt + " w " + wt);
        }
        assertThat(ranOnOneDnn).as("random geometries run through oneDNN").isGreaterThan(Dnnl.enabled() ? 30 : -1);
    }

    @Test
    void aConvolutionWindowEntirelyInPaddingStaysOffOneDnn() {
        // The geometry that crashed oneDNN 3.8.1's brgemm convolution (SIGSEGV): input 1 wide, pads 1 and 1, stride 2,
        // so both output columns read only padding.
        Attributes a = Attributes.of("strides", new long[] {1, 2}, "pads", new long[] {2, 1, 0, 1}, "dilations", new long[] {1, 2}, "groups", 2L);
        TensorType xt = TensorType.float32(Shape.of(new long[] {1, 4, 9, 1}));
        TensorType wt = TensorType.float32(Shape.of(new long[] {6, 2, 2, 1}));
        assertThat(DnnlConvKernel.geometryFits(dev.kiln.engine.ops.Conv2dOp.geometry(xt.shape(), wt.shape(), a))).isFalse();
        Slot[] in = {new Slot(direct(0, new float[36]), 0, xt), new Slot(direct(0, new float[12]), 0, wt)};
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> new DnnlConvKernel(in, new Slot(direct(0, new float[60]), 0, xt), a))
                .isInstanceOf(UnsupportedOperationException.class).hasMessageContaining("entirely in the padding");
        // The same channels without that padding fit.
        Attributes plain = Attributes.of("strides", new long[] {1, 1}, "groups", 2L);
        assertThat(DnnlConvKernel.geometryFits(dev.kiln.engine.ops.Conv2dOp.geometry(xt.shape(), wt.shape(), plain))).isTrue();
    }
}
