package dev.kiln.engine.backend.cpu;

import dev.kiln.engine.Kiln;
import dev.kiln.engine.backend.Kernel;
import dev.kiln.engine.exec.CompiledModel;
import dev.kiln.engine.exec.Executor;
import dev.kiln.engine.ir.Signature;
import dev.kiln.engine.nn.Block;
import dev.kiln.engine.nn.Conv2d;
import dev.kiln.engine.nn.UnaryBlock;
import dev.kiln.engine.tensor.Shape;
import dev.kiln.engine.tensor.Tensor;
import dev.kiln.engine.tensor.TensorData;
import dev.kiln.engine.nn.Dense;
import dev.kiln.engine.ops.Activation;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.lang.management.ManagementFactory;
import java.util.List;
import java.util.Random;

import static dev.kiln.engine.TestGraphs.assertAllClose;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * Layer chains on oneDNN ({@link DnnlChainKernel}) against eager execution (ND4J's kernels, an independent
 * implementation): the reference CNN, random chains of odd geometry, batches that end in a short chunk, inputs holding
 * NaN or infinity or large enough to overflow (those run node by node, with PyTorch's NaN propagation), values used
 * twice (which end a chain), and no allocation per call.
 */
class DnnlChainKernelTest {
    private static final Random RANDOM = new Random(Long.getLong("kiln.test.seed", 5));

    @BeforeEach
    void needsOneDnn() {
        Assumptions.assumeTrue(Dnnl.enabled(), "oneDNN did not load in this JVM");
    }

    private static float[] images(int n, int c, int h, int w, long seed) {
        Random r = new Random(seed);
        float[] v = new float[n * c * h * w];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) r.nextGaussian();
        }
        return v;
    }

    private static List<DnnlChainKernel> chains(Executor executor) {
        return ((CpuExecutor) executor).schedule().stream().filter(k -> k instanceof DnnlChainKernel).map(k -> (DnnlChainKernel) k).toList();
    }

    /** Runs {@code batch} rows of {@code x} through {@code executor} and returns its first output. */
    static float[] run(Executor executor, float[] x, int batch) {
        executor.setInput(0, x, 0, batch);
        executor.run(batch);
        float[] out = new float[executor.outputElements(0)];
        executor.getOutput(0, out, 0);
        return out;
    }

    private static float[] eager(Block block, long[] shape, float[] x) {
        return block.forward(Tensor.of(TensorData.ofFloats(shape, x))).toFloatArray();
    }

    /** Eager outputs of a clean input, checked finite so that a NaN-for-NaN match cannot pass vacuously. */
    private static float[] finiteEager(Block block, long[] shape, float[] x) {
        float[] out = eager(block, shape, x);
        for (float v : out) {
            assertThat(v).as("eager output of a finite input").isFinite();
        }
        return out;
    }

    /** The reference CNN's layers (../shared/models/cnn) without its batch norm, whose random statistics would be NaN. */
    static final class TestCnn extends UnaryBlock {
        private final Conv2d conv1 = addChild("conv1", new Conv2d(1, 8, 3, 1, 1, 1, 1, true));
        private final Conv2d conv2 = addChild("conv2", new Conv2d(8, 16, 3));
        private final Dense fc = addChild("fc", new Dense(10, Activation.NONE, true, 16));

        @Override
        protected Tensor forwardInternal(Tensor x) {
            Tensor h = conv1.forward(x).relu().maxPool2d(new long[] {2, 2}, new long[] {2, 2}, new long[] {0, 0, 0, 0});
            h = conv2.forward(h).relu().mean(true, 2, 3).reshape(0, -1);
            return fc.forward(h).softmax(1);
        }
    }

    @Test
    void theReferenceCnnRunsAsOneChainAndMatchesEagerAtEveryChunking() {
        Block cnn = new TestCnn().setSeed(3);
        Signature signature = Signature.builder().input("image", Shape.batched(1, 28, 28)).build();
        try (CompiledModel model = Kiln.compile(cnn, signature); Executor executor = model.newExecutor(100)) {
            List<DnnlChainKernel> chains = chains(executor);
            assertThat(chains).hasSize(1);
            DnnlChainKernel chain = chains.get(0);
            // conv1 (relu) -> max pool -> conv2 (batch norm folded in, relu) -> global average pool: the whole trunk.
            assertThat(chain.steps()).extracting(s -> s.node().op()).containsExactly("conv2d", "max_pool2d", "conv2d", "reduce_mean");
            // Intermediates per image: 8x28x28 + 8x14x14 + 16x12x12 + 16 = 10,160 floats, doubled for blocked layouts'
            // padding: 81,280 bytes; 2 MiB holds 25 images, rounded down to a power of two.
            assertThat(chain.chunk()).isEqualTo(16);
            assertThat(((CpuExecutor) executor).schedule()).hasSize(3);
            for (int batch : new int[] {1, 15, 16, 17, 37, 100}) {
                float[] x = images(batch, 1, 28, 28, batch);
                assertAllClose(run(executor, x, batch), finiteEager(cnn, new long[] {batch, 1, 28, 28}, x), 1e-4, 1e-6, "reference CNN at batch " + batch);
            }
            assertThat(chain.fallbacks()).as("batches run node by node").isZero();
        }
    }

    @Test
    void nonFiniteInputsRunNodeByNodeAndPropagateNaNLikePyTorch() {
        Block cnn = new TestCnn().setSeed(4);
        Signature signature = Signature.builder().input("image", Shape.batched(1, 28, 28)).build();
        try (CompiledModel model = Kiln.compile(cnn, signature); Executor executor = model.newExecutor(37)) {
            DnnlChainKernel chain = chains(executor).get(0);
            float[] x = images(37, 1, 28, 28, 9);
            x[5 * 784 + 300] = Float.NaN;
            x[20 * 784 + 17] = Float.POSITIVE_INFINITY;
            float[] expected = eager(cnn, new long[] {37, 1, 28, 28}, x);
            float[] actual = run(executor, x, 37);
            assertThat(chain.fallbacks()).isEqualTo(1);
            assertThat(expected[5 * 10]).as("eager output of the image holding NaN").isNaN();
            assertThat(expected[20 * 10]).as("eager output of the image holding +Inf").isNaN();
            assertAllClose(actual, expected, 1e-4, 1e-6, "CNN with NaN and +Inf inputs");
            // The next clean batch runs on the chain again.
            float[] clean = images(37, 1, 28, 28, 10);
            assertAllClose(run(executor, clean, 37), finiteEager(cnn, new long[] {37, 1, 28, 28}, clean), 1e-4, 1e-6, "CNN after a non-finite batch");
            assertThat(chain.fallbacks()).isEqualTo(1);
        }
    }

    @Test
    void inputsLargeEnoughThatALayerCouldOverflowRunNodeByNode() {
        Block cnn = new TestCnn().setSeed(5);
        Signature signature = Signature.builder().input("image", Shape.batched(1, 28, 28)).build();
        try (CompiledModel model = Kiln.compile(cnn, signature); Executor executor = model.newExecutor(8)) {
            DnnlChainKernel chain = chains(executor).get(0);
            float[] x = images(8, 1, 28, 28, 11);
            float maxAbs = 0;
            for (int i = 0; i < x.length; i++) {
                x[i] *= 1e29f;
                maxAbs = Math.max(maxAbs, Math.abs(x[i]));
            }
            // Finite everywhere (no layer actually overflows), but the bound no longer proves it.
            assertThat(chain.staysFinite(maxAbs)).isFalse();
            assertThat(chain.staysFinite(1f)).isTrue();
            assertAllClose(run(executor, x, 8), finiteEager(cnn, new long[] {8, 1, 28, 28}, x), 1e-4, 1e-6, "CNN on inputs near 1e29");
            assertThat(chain.fallbacks()).isEqualTo(1);
        }
    }

    /** conv 1->2 (1x1, no bias) -> conv 2->1 (1x1, no bias) -> max pool 2x2, weights loaded by the test. */
    static final class Cancelling extends UnaryBlock {
        private final Conv2d first = addChild("a", new Conv2d(1, 2, 1, 1, 0, 1, 1, false));
        private final Conv2d second = addChild("b", new Conv2d(2, 1, 1, 1, 0, 1, 1, false));

        @Override
        protected Tensor forwardInternal(Tensor x) {
            return second.forward(first.forward(x)).maxPool2d(new long[] {2, 2}, new long[] {2, 2}, new long[] {0, 0, 0, 0});
        }
    }

    @Test
    void aLayerThatCouldOverflowSendsTheBatchNodeByNodeEvenWhenLaterLayersShrinkTheBound() {
        // The first layer's filters have L1 norm 1e20, the second's 2e-20: the last layer's bound is small, but on an
        // input of 1e20 the first layer overflows to +-Inf and the second makes NaN of them (Inf - Inf), which
        // oneDNN's max pool would drop. So the input bound must come from the first layer: 1e30 / 1e20.
        Block block = new Cancelling().loadParameters(java.util.Map.of(
                "a.weight", TensorData.ofFloats(new long[] {2, 1, 1, 1}, new float[] {1e20f, -1e20f}),
                "b.weight", TensorData.ofFloats(new long[] {1, 2, 1, 1}, new float[] {1e-20f, 1e-20f})));
        assertThat(DnnlChainKernel.inputBound(new double[] {1e20, 2e-20, 1}, new double[] {0, 0, 0})).isCloseTo(1e10f, org.assertj.core.data.Percentage.withPercentage(1e-4));
        Signature signature = Signature.builder().input("x", Shape.batched(1, 2, 2)).build();
        try (CompiledModel model = Kiln.compile(block, signature); Executor executor = model.newExecutor(2)) {
            DnnlChainKernel chain = chains(executor).get(0);
            float[] x = {1e20f, 1, 1, 1, 1, 2, 3, 4};
            float[] expected = eager(block, new long[] {2, 1, 2, 2}, x);
            assertThat(expected[0]).as("PyTorch semantics: Inf - Inf in the first image").isNaN();
            float[] actual = run(executor, x, 2);
            assertAllClose(actual, expected, 1e-4, 1e-6, "overflowing first layer");
            assertThat(chain.fallbacks()).isEqualTo(1);
            float[] small = {1, 2, 3, 4, 4, 3, 2, 1};
            assertAllClose(run(executor, small, 2), finiteEager(block, new long[] {2, 1, 2, 2}, small), 1e-4, 1e-6, "small inputs");
            assertThat(chain.fallbacks()).isEqualTo(1);
        }
    }

    @Test
    void aBatchFixedInTheShapeIsNotChained() {
        // Chunks are whole images along a symbolic batch axis; a model compiled for exactly 8 images has none.
        Block cnn = new TestCnn().setSeed(12);
        Signature signature = Signature.builder().input("image", Shape.of(8, 1, 28, 28)).build();
        try (CompiledModel model = Kiln.compile(cnn, signature); Executor executor = model.newExecutor(8)) {
            assertThat(chains(executor)).isEmpty();
            float[] x = images(8, 1, 28, 28, 12);
            assertAllClose(run(executor, x, 8), finiteEager(cnn, new long[] {8, 1, 28, 28}, x), 1e-4, 1e-6, "fixed-batch CNN");
        }
    }

    /** conv -> [max pool] -> conv -> [global average pool], each geometry drawn at random. */
    static final class RandomChain extends UnaryBlock {
        private final Conv2d first;
        private final Conv2d second;
        private final long[] pool;
        private final boolean relu1;
        private final boolean relu2;
        private final boolean gap;
        final String description;

        RandomChain(Random r, int c) {
            int groups = r.nextInt(4) == 0 ? 2 : 1;
            int m1 = groups * (1 + r.nextInt(12));
            int m2 = 1 + r.nextInt(20);
            first = addChild("a", new Conv2d(c, m1, 1 + r.nextInt(3), 1 + r.nextInt(2), r.nextInt(2), 1 + r.nextInt(2), 1, r.nextBoolean()));
            second = addChild("b", new Conv2d(m1, m2 * groups, 1 + r.nextInt(3), 1, r.nextInt(2), 1, groups, true));
            pool = r.nextBoolean() ? new long[] {2 + r.nextInt(2), 1 + r.nextInt(2), r.nextInt(2)} : null;
            relu1 = r.nextBoolean();
            relu2 = r.nextBoolean();
            gap = r.nextBoolean();
            description = first.describe() + (relu1 ? " relu" : "") + (pool != null ? " pool " + java.util.Arrays.toString(pool) : "")
                    + " " + second.describe() + (relu2 ? " relu" : "") + (gap ? " gap" : "");
        }

        @Override
        protected Tensor forwardInternal(Tensor x) {
            Tensor h = first.forward(x);
            h = relu1 ? h.relu() : h;
            if (pool != null) {
                h = h.maxPool2d(new long[] {pool[0], pool[0]}, new long[] {pool[1], pool[1]}, new long[] {pool[2], pool[2], pool[2], pool[2]});
            }
            h = second.forward(h);
            h = relu2 ? h.relu() : h;
            return gap ? h.mean(true, 2, 3) : h;
        }
    }

    @Test
    void randomChainsMatchEager() {
        int chained = 0;
        for (int trial = 0; trial < 40; trial++) {
            int c = 1 + RANDOM.nextInt(4);
            int h = 7 + RANDOM.nextInt(14);
            int w = 7 + RANDOM.nextInt(14);
            RandomChain block = new RandomChain(RANDOM, c);
            block.setSeed(trial);
            int batch = 1 + RANDOM.nextInt(40);
            float[] x = images(batch, c, h, w, trial);
            String what = "trial " + trial + ": " + block.description + " on " + batch + "x" + c + "x" + h + "x" + w;
            float[] expected;
            try {
                expected = finiteEager(block, new long[] {batch, c, h, w}, x);
            } catch (RuntimeException e) {
                continue; // a geometry the layers reject (window larger than the input): nothing to compare
            }
            Signature signature = Signature.builder().input("x", Shape.batched(c, h, w)).build();
            try (CompiledModel model = Kiln.compile(block, signature); Executor executor = model.newExecutor(batch)) {
                chained += chains(executor).size();
                assertAllClose(run(executor, x, batch), expected, 2e-4, 1e-5, what);
            } catch (RuntimeException e) {
                throw new AssertionError(what, e);
            }
        }
        assertThat(chained).as("random models that ran as a chain").isGreaterThan(25);
    }

    /** conv -> relu -> [max pool -> conv -> relu -> global average pool] + global average pool of the first relu. */
    static final class Branching extends UnaryBlock {
        private final Conv2d first = addChild("a", new Conv2d(1, 8, 3, 1, 1, 1, 1, true));
        private final Conv2d second = addChild("b", new Conv2d(8, 8, 3));

        @Override
        protected Tensor forwardInternal(Tensor x) {
            Tensor h = first.forward(x).relu();
            Tensor deep = second.forward(h.maxPool2d(new long[] {2, 2}, new long[] {2, 2}, new long[] {0, 0, 0, 0})).relu().mean(true, 2, 3);
            return deep.add(h.mean(true, 2, 3));
        }
    }

    @Test
    void aValueUsedTwiceEndsTheChainBeforeIt() {
        Block block = new Branching().setSeed(6);
        Signature signature = Signature.builder().input("x", Shape.batched(1, 20, 20)).build();
        try (CompiledModel model = Kiln.compile(block, signature); Executor executor = model.newExecutor(19)) {
            List<DnnlChainKernel> chains = chains(executor);
            // The first convolution's output feeds the pool and a mean: the chain starts after it.
            assertThat(chains).hasSize(1);
            assertThat(chains.get(0).steps()).extracting(s -> s.node().op()).containsExactly("max_pool2d", "conv2d", "reduce_mean");
            float[] x = images(19, 1, 20, 20, 2);
            assertAllClose(run(executor, x, 19), finiteEager(block, new long[] {19, 1, 20, 20}, x), 1e-4, 1e-6, "branching model");
        }
    }

    @Test
    void steadyStateCallsAllocateNothingAndClosingFreesEverything() {
        com.sun.management.ThreadMXBean threads = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        long offHeapBefore = CpuBackend.offHeapBytes();
        Block cnn = new TestCnn().setSeed(7);
        Signature signature = Signature.builder().input("image", Shape.batched(1, 28, 28)).build();
        int batch = 17; // a full chunk and a short one
        float[] x = images(batch, 1, 28, 28, 1);
        float[] out = new float[batch * 10];
        try (CompiledModel model = Kiln.compile(cnn, signature); Executor executor = model.newExecutor(batch)) {
            assertThat(chains(executor)).hasSize(1);
            // Long enough a warm-up that C2 compiles the input screen as a method, not only its loop (OSR): until
            // then its vectors are boxed on every call (measured: about 1 KB per call for the first ~4,500 calls).
            for (int i = 0; i < 6000; i++) {
                call(executor, x, out, batch);
            }
            long heapBytes = -1;
            long offHeapBytes = -1;
            // As in ExecutorAllocationTest: a window with a JIT compilation in it is not steady state. More windows than
            // there: on a loaded machine C2's compile of the screen can come late (a window is ~10 ms), while a kernel
            // that allocates per call allocates in every window.
            for (int window = 0; window < 200 && heapBytes != 0; window++) {
                long offHeap = CpuBackend.offHeapBytes();
                long heap = threads.getCurrentThreadAllocatedBytes();
                for (int i = 0; i < 50; i++) {
                    call(executor, x, out, batch);
                }
                heapBytes = threads.getCurrentThreadAllocatedBytes() - heap;
                offHeapBytes = CpuBackend.offHeapBytes() - offHeap;
            }
            assertThat(heapBytes).as("heap bytes allocated by 50 calls").isZero();
            assertThat(offHeapBytes).as("off-heap bytes allocated by 50 calls").isZero();
        }
        // At most what it was: pointers other tests left to the garbage collector may be freed meanwhile.
        assertThat(CpuBackend.offHeapBytes()).as("off-heap bytes after closing").isLessThanOrEqualTo(offHeapBefore);
    }

    private static void call(Executor executor, float[] x, float[] out, int batch) {
        executor.setInput(0, x, 0, batch);
        executor.run(batch);
        executor.getOutput(0, out, 0);
    }

    @Test
    void theSwitchRunsEveryLayerNodeByNode() {
        Block cnn = new TestCnn().setSeed(8);
        Signature signature = Signature.builder().input("image", Shape.batched(1, 28, 28)).build();
        String before = System.getProperty(DnnlChainKernel.DISABLE);
        System.setProperty(DnnlChainKernel.DISABLE, "true");
        try (CompiledModel model = Kiln.compile(cnn, signature); Executor executor = model.newExecutor(4)) {
            assertThat(chains(executor)).isEmpty();
            List<Kernel> schedule = ((CpuExecutor) executor).schedule();
            assertThat(schedule).hasSizeGreaterThan(3);
        } finally {
            if (before == null) {
                System.clearProperty(DnnlChainKernel.DISABLE);
            } else {
                System.setProperty(DnnlChainKernel.DISABLE, before);
            }
        }
    }
}
