package dev.kiln.engine.backend.cpu;

import dev.kiln.engine.KilnException;
import dev.kiln.engine.backend.Kernel;
import dev.kiln.engine.backend.Slot;
import dev.kiln.engine.ir.Attributes;
import dev.kiln.engine.ir.Node;
import dev.kiln.engine.ir.TensorType;
import dev.kiln.engine.ops.Activation;
import dev.kiln.engine.ops.MathFunctions;
import dev.kiln.engine.ops.OpRegistry;
import dev.kiln.engine.tensor.Shape;
import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.List;
import java.util.Random;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assumptions.assumeThat;

/**
 * Both CPU dense kernels (oneDNN's matmul with fused bias/relu, and OpenBLAS + Kiln's epilogue) against a float64
 * reference computed here, on random inputs of odd sizes (1, 2, 3, 17, 513), every activation, with and without a
 * bias, slots at non-zero offsets, NaN inputs, and row counts that cycle through more sizes than the oneDNN kernel
 * keeps plans for.
 */
class DenseKernelTest {
    private static final Random RANDOM = new Random(2026);

    @Test
    void oneDnnLoadsHere() {
        // The project's machines are x86-64 Linux, where JavaCPP's dnnl preset ships its library: auto picks it.
        assertThat(Dnnl.enabled()).as("oneDNN enabled (%s)", Dnnl.description()).isTrue();
        assertThat(CpuBackend.gemmLibrary()).startsWith("oneDNN 3.");
    }

    @Test
    void bothKernelsMatchAFloat64ReferenceOnOddSizes() {
        int[] sizes = {1, 2, 3, 17, 513};
        for (int rows : sizes) {
            for (int k : sizes) {
                for (int n : sizes) {
                    Activation act = Activation.values()[RANDOM.nextInt(Activation.values().length)];
                    boolean bias = RANDOM.nextBoolean();
                    check(rows, k, n, act, bias, false);
                }
            }
        }
    }

    @Test
    void everyActivationWithAndWithoutBias() {
        for (Activation act : Activation.values()) {
            for (boolean bias : new boolean[] {true, false}) {
                check(33, 40, 19, act, bias, false);
                check(1, 40, 19, act, bias, false);
            }
        }
    }

    @Test
    void nanInARowGivesNanOutputsInThatRowOnly() {
        // PyTorch semantics: NaN propagates through the matmul and through relu (max(NaN, 0) is NaN).
        for (Activation act : new Activation[] {Activation.RELU, Activation.NONE, Activation.GELU}) {
            check(9, 24, 16, act, true, true);
            check(1, 24, 16, act, true, true);
        }
    }

    @Test
    void rowCountsCycleThroughMoreSizesThanThePlanCacheHolds() {
        int k = 21;
        int n = 35;
        int maxRows = 40;
        Fixture f = new Fixture(maxRows, k, n, Activation.RELU, true, false, true);
        try (Kernel kernel = new DnnlDenseKernel(f.node, f.inputs, f.out, true)) {
            int[] order = {40, 7, 2, 40, 13, 29, 3, 40, 7, 1, 31, 2, 40, 17, 5, 6, 40};
            for (int rows : order) {
                f.clearOutput();
                kernel.run(rows);
                f.assertMatches(rows, "rows " + rows + " after " + java.util.Arrays.toString(order));
            }
            assertThat(order.length).isGreaterThan(DnnlKernel.PLANS);
        }
    }

    @Test
    void closeIsIdempotentAndZeroRowsDoNothing() {
        Fixture f = new Fixture(4, 3, 2, Activation.NONE, true, false, true);
        Kernel kernel = new DnnlDenseKernel(f.node, f.inputs, f.out, true);
        kernel.run(0);
        kernel.run(4);
        f.assertMatches(4, "before close");
        kernel.close();
        kernel.close();
    }

    @Test
    void oneDnnSharesNd4jsOpenMpAndEachThreadTakesTheChosenThreadCount() throws Exception {
        assumeThat(Dnnl.enabled()).isTrue();
        int before = CpuBackend.blasThreads(); // loads ND4J's native library too
        // Run a oneDNN matmul so both libraries are loaded, then: one OpenMP runtime in the process (so the thread
        // count set through ND4J's native ops is the one oneDNN reads).
        Fixture f = new Fixture(64, 32, 16, Activation.NONE, true, false, false);
        try (Kernel kernel = new DnnlDenseKernel(f.node, f.inputs, f.out, true)) {
            kernel.run(64);
            f.assertMatches(64, "warm-up");
        }
        try (java.util.stream.Stream<String> maps = java.nio.file.Files.lines(java.nio.file.Path.of("/proc/self/maps"))) {
            assertThat(maps.filter(l -> l.contains("libgomp")).map(l -> l.substring(l.indexOf('/'))).distinct().toList())
                    .as("OpenMP runtimes mapped in this process").hasSize(1);
        }
        var ops = org.nd4j.nativeblas.NativeOpsHolder.getInstance().getDeviceNativeOps();
        int[] seen = new int[3];
        Thread first = new Thread(() -> {
            CpuBackend.setBlasThreads(1);
            Dnnl.applyThreads();
            seen[0] = ops.ompGetMaxThreads();
            CpuBackend.setBlasThreads(2);
            Dnnl.applyThreads();
            seen[1] = ops.ompGetMaxThreads();
        });
        first.start();
        first.join();
        Thread second = new Thread(() -> {
            CpuBackend.setBlasThreads(1);
            Dnnl.applyThreads();
            seen[2] = ops.ompGetMaxThreads();
        });
        second.start();
        second.join();
        CpuBackend.setBlasThreads(before);
        assertThat(seen).containsExactly(1, 2, 1);
    }

    @Test
    void anUnknownGemmChoiceIsRefusedWithTheAllowedValues() {
        assertThatThrownBy(() -> Dnnl.decide("mkl"))
                .isInstanceOf(KilnException.class)
                .hasMessageContaining("kiln.cpu.gemm must be auto, onednn or openblas, not 'mkl'");
    }

    /**
     * Weights the graph computes (not parameters) are read on every run: the kernel must not keep a packed copy.
     * Changing them between runs changes the output, by the float64 reference.
     */
    @Test
    void weightsThatAreNotFixedAreReadOnEveryRun() {
        assumeThat(Dnnl.enabled()).isTrue();
        Fixture f = new Fixture(64, 48, 32, Activation.RELU, true, false, true);
        try (Kernel kernel = new DnnlDenseKernel(f.node, f.inputs, f.out, false)) {
            for (int round = 0; round < 3; round++) {
                for (int i = 0; i < f.w.length; i++) {
                    f.w[i] = (float) RANDOM.nextGaussian();
                    f.inputs[1].put(i, f.w[i]);
                }
                for (int rows : new int[] {64, 5}) {
                    f.clearOutput();
                    kernel.run(rows);
                    f.assertMatches(rows, "round " + round + ", rows " + rows);
                }
            }
        }
    }

    /** oneDNN with packed weights, oneDNN reading them as they are, and OpenBLAS. */
    private static void check(int rows, int k, int n, Activation act, boolean bias, boolean nan) {
        for (String which : new String[] {"oneDNN packed", "oneDNN plain", "OpenBLAS"}) {
            if (which.startsWith("oneDNN")) {
                assumeThat(Dnnl.enabled()).isTrue();
            }
            Fixture f = new Fixture(rows, k, n, act, bias, nan, false);
            try (Kernel kernel = which.equals("OpenBLAS") ? new BlasDenseKernel(f.node, f.inputs, f.out)
                    : new DnnlDenseKernel(f.node, f.inputs, f.out, which.equals("oneDNN packed"))) {
                kernel.run(rows);
                f.assertMatches(rows, String.format("%s rows %d k %d n %d %s bias %s nan %s", which, rows, k, n, act, bias, nan));
            }
        }
    }

    /** Inputs, weights, bias and output at odd offsets in direct buffers, and the float64 reference. */
    private static final class Fixture {
        final int k;
        final int n;
        final float[] x;
        final float[] w;
        final float[] b;
        final Activation act;
        final Node node;
        final Slot[] inputs;
        final Slot out;
        final int nanRow;

        Fixture(int maxRows, int k, int n, Activation act, boolean withBias, boolean nan, boolean symbolicBatch) {
            this.k = k;
            this.n = n;
            this.act = act;
            x = gaussian(maxRows * k);
            w = gaussian(n * k);
            b = withBias ? gaussian(n) : null;
            nanRow = nan ? maxRows / 2 : -1;
            if (nan) {
                x[nanRow * k + k / 2] = Float.NaN;
            }
            Shape xs = symbolicBatch ? Shape.batched(k) : Shape.of(maxRows, k);
            Shape os = symbolicBatch ? Shape.batched(n) : Shape.of(maxRows, n);
            node = new Node(OpRegistry.DENSE, Attributes.of("activation", act.opName()), List.of(), List.of(), "test");
            Slot xSlot = new Slot(direct(3, x), 3, TensorType.float32(xs));
            Slot wSlot = new Slot(direct(5, w), 5, TensorType.float32(Shape.of(n, k)));
            inputs = withBias ? new Slot[] {xSlot, wSlot, new Slot(direct(1, b), 1, TensorType.float32(Shape.of(n)))} : new Slot[] {xSlot, wSlot};
            out = new Slot(direct(7, new float[maxRows * n]), 7, TensorType.float32(os));
        }

        void clearOutput() {
            for (int i = out.offset(); i < out.buffer().capacity(); i++) {
                out.buffer().put(i, -12345f);
            }
        }

        void assertMatches(int rows, String what) {
            for (int r = 0; r < rows; r++) {
                for (int j = 0; j < n; j++) {
                    double acc = b == null ? 0 : b[j];
                    for (int i = 0; i < k; i++) {
                        acc += (double) x[r * k + i] * w[j * k + i];
                    }
                    double expected = reference(acc);
                    float actual = out.get(r * n + j);
                    if (r == nanRow) {
                        assertThat(actual).as("%s: row %d (the NaN row) column %d", what, r, j).isNaN();
                    } else {
                        double scale = b == null ? 0 : Math.abs(b[j]);
                        for (int i = 0; i < k; i++) {
                            scale += Math.abs((double) x[r * k + i] * w[j * k + i]);
                        }
                        // float32 accumulation of k products: error bound ~ k * eps * sum |x w| (loose for GEMM blocking).
                        double tolerance = 1e-6 + 4e-7 * Math.sqrt(k + 1) * scale + 2e-6 * Math.abs(expected);
                        assertThat((double) actual).as("%s: row %d column %d", what, r, j).isCloseTo(expected, org.assertj.core.data.Offset.offset(tolerance));
                    }
                }
            }
        }

        private double reference(double v) {
            switch (act) {
                case NONE: return v;
                case RELU: return Math.max(v, 0);
                case SIGMOID: return 1 / (1 + Math.exp(-v));
                case TANH: return Math.tanh(v);
                case GELU: return 0.5 * v * (1 + MathFunctions.erf(v / Math.sqrt(2)));
                default: throw new AssertionError(act);
            }
        }
    }

    private static float[] gaussian(int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) RANDOM.nextGaussian();
        }
        return v;
    }

    private static FloatBuffer direct(int offset, float[] values) {
        FloatBuffer buffer = ByteBuffer.allocateDirect((offset + values.length) * 4).order(ByteOrder.nativeOrder()).asFloatBuffer();
        for (int i = 0; i < values.length; i++) {
            buffer.put(offset + i, values[i]);
        }
        return buffer;
    }
}
