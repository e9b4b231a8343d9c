package dev.kiln.engine.backend.cpu;

import dev.kiln.engine.Kiln;
import dev.kiln.engine.exec.CompiledModel;
import dev.kiln.engine.exec.Executor;
import dev.kiln.engine.ir.Signature;
import dev.kiln.engine.nn.Block;
import dev.kiln.engine.nn.Dense;
import dev.kiln.engine.nn.Sequential;
import dev.kiln.engine.ops.Activation;
import dev.kiln.engine.tensor.Shape;
import dev.kiln.engine.tensor.Tensor;
import dev.kiln.engine.tensor.TensorData;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.util.List;

import static dev.kiln.engine.TestGraphs.assertAllClose;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * Dense chains ({@link DenseChainKernel}) against eager execution (ND4J's kernels, an independent implementation)
 * and against the same layers run one by one (within float rounding: oneDNN may pick another kernel for a chunk's
 * number of rows than for the whole batch's):
 * batches below, at and across chunk boundaries, a NaN row in a later chunk, layers that widen again (where an
 * earlier chunk's outputs could land on a later chunk's rows if the memory planner let them), and no off-heap
 * allocation per call.
 */
class DenseChainKernelTest {
    private static final String DISABLE = "kiln.onednn.noDenseChain";

    @BeforeEach
    void needsOneDnn() {
        Assumptions.assumeTrue(Dnnl.enabled(), "oneDNN did not load in this JVM");
    }

    /** 2048 -> 1024 (relu) -> 512 (relu) -> 10: 14,376 bytes per row, so 1 MiB holds chunks of 64 rows. */
    private static Block wideMlp(long seed) {
        return new Sequential().add(new Dense(1024, Activation.RELU, true, 2048), new Dense(512, Activation.RELU, true, 1024),
                new Dense(10, Activation.NONE, true, 512)).setSeed(seed);
    }

    private static float[] gaussian(int n, long seed) {
        return dev.kiln.engine.TestGraphs.random(new long[] {n}, seed).toFloatArray();
    }

    private static List<DenseChainKernel> chains(Executor executor) {
        return ((CpuExecutor) executor).schedule().stream().filter(k -> k instanceof DenseChainKernel).map(k -> (DenseChainKernel) k).toList();
    }

    private static float[] eager(Block block, long width, float[] x, int batch) {
        return block.forward(Tensor.of(TensorData.ofFloats(new long[] {batch, width}, x))).toFloatArray();
    }

    /** The same model's executor with dense chains switched off (decided when the executor is built). */
    private static Executor layerByLayer(CompiledModel model, int capacity) {
        System.setProperty(DISABLE, "true");
        try {
            return model.newExecutor(capacity);
        } finally {
            System.clearProperty(DISABLE);
        }
    }

    /**
     * Chunks cover every row exactly once, in order: equal multiples of 16 rows but the last, none under 16 rows
     * unless the batch is. By hand: 1,024 rows in chunks of 256 are 4 x 256; 4,897 rows in chunks of 288 are 16 x 288
     * + 289 (the one row left joins the last chunk, and is not run a second time on its own); 17 rows in chunks of 16
     * are one chunk of 17.
     */
    @Test
    void chunksCoverEveryRowOnceWithoutATinyLastChunk() {
        assertThat(DenseChainKernel.chunkStarts(1024, 256)).containsExactly(0, 256, 512, 768, 1024);
        assertThat(DenseChainKernel.chunkStarts(17, 16)).containsExactly(0, 17);
        long[] odd = DenseChainKernel.chunkStarts(4897, 288);
        assertThat(odd).hasSize(18);
        assertThat(odd[16]).isEqualTo(16 * 288);
        assertThat(odd[17]).isEqualTo(4897);
        for (long rows = 17; rows < 3000; rows += 7) {
            for (long chunk : new long[] {16, 64, 256, 432}) {
                long[] starts = DenseChainKernel.chunkStarts(rows, chunk);
                assertThat(starts[0]).isZero();
                assertThat(starts[starts.length - 1]).as("rows %d chunk %d", rows, chunk).isEqualTo(rows);
                for (int c = 0; c + 1 < starts.length; c++) {
                    long count = starts[c + 1] - starts[c];
                    assertThat(count).as("rows %d chunk %d, chunk %d", rows, chunk, c).isGreaterThanOrEqualTo(16);
                    if (c + 2 < starts.length) {
                        assertThat(count % 16).isZero();
                        assertThat(count).isLessThanOrEqualTo(chunk + 15);
                    }
                }
            }
        }
    }

    @Test
    void anMlpRunsAsOneChainInChunksMatchingEagerAndLayerByLayer() {
        Block mlp = wideMlp(11);
        Signature signature = Signature.builder().input("x", Shape.batched(2048)).build();
        try (CompiledModel model = Kiln.compile(mlp, signature); Executor chained = model.newExecutor(200); Executor plain = layerByLayer(model, 200)) {
            List<DenseChainKernel> chains = chains(chained);
            assertThat(chains).hasSize(1);
            assertThat(chains.get(0).chunk()).isEqualTo(64);
            assertThat(((CpuExecutor) chained).schedule()).hasSize(1);
            assertThat(chains(plain)).isEmpty();
            // 193 rows: chunks of 64, 64 and 65 (a last chunk of 1 row is folded into the one before).
            for (int batch : new int[] {1, 2, 63, 64, 65, 129, 193, 200}) {
                float[] x = gaussian(batch * 2048, batch);
                float[] got = DnnlChainKernelTest.run(chained, x, batch);
                float[] expected = eager(mlp, 2048, x, batch);
                for (float v : expected) {
                    assertThat(v).as("eager output of a finite input").isFinite();
                }
                assertAllClose(got, expected, 1e-4, 1e-5, "chained MLP at batch " + batch);
                assertAllClose(got, DnnlChainKernelTest.run(plain, x, batch), 1e-5, 1e-6, "chained vs layer by layer at batch " + batch);
            }
        }
    }

    /**
     * Rows bound in place 2,085 floats apart (2,048 values, then 37 NaN the chain must not read), over three chunks:
     * the chain's first layer reads them with that leading dimension and matches eager execution.
     */
    @Test
    void aChainReadsStridedRowsInEveryChunk() {
        Block mlp = wideMlp(13);
        Signature signature = Signature.builder().input("x", Shape.batched(2048)).build();
        int batch = 193;
        int stride = 2048 + 37;
        java.nio.ByteBuffer rows = java.nio.ByteBuffer.allocateDirect(4 * stride * batch).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < stride * batch; i++) {
            rows.putFloat(4 * i, Float.NaN);
        }
        try (CompiledModel model = Kiln.compile(mlp, signature); Executor executor = model.newExecutor(batch)) {
            assertThat(executor.bindInputRows(0, rows, stride)).isTrue();
            assertThat(chains(executor)).hasSize(1);
            assertThat(((CpuExecutor) executor).schedule()).as("no packed copy: the chain alone").hasSize(1);
            for (int n : new int[] {batch, 2, 1}) {
                float[] x = gaussian(n * 2048, 40 + n);
                assertAllClose(DnnlChainKernelTest.run(executor, x, n), eager(mlp, 2048, x, n), 1e-4, 1e-5, "strided rows at batch " + n);
            }
        }
    }

    @Test
    void aNanRowInALaterChunkStaysInItsRow() {
        Block mlp = wideMlp(12);
        Signature signature = Signature.builder().input("x", Shape.batched(2048)).build();
        int batch = 150;
        try (CompiledModel model = Kiln.compile(mlp, signature); Executor executor = model.newExecutor(batch)) {
            assertThat(chains(executor)).hasSize(1);
            float[] x = gaussian(batch * 2048, 3);
            x[100 * 2048 + 7] = Float.NaN;
            float[] got = DnnlChainKernelTest.run(executor, x, batch);
            float[] expected = eager(mlp, 2048, x, batch);
            for (int r = 0; r < batch; r++) {
                for (int j = 0; j < 10; j++) {
                    if (r == 100) {
                        assertThat(got[r * 10 + j]).as("row 100 (the NaN row) output %d", j).isNaN();
                    } else {
                        assertThat(got[r * 10 + j]).as("row %d output %d", r, j).isFinite();
                    }
                }
            }
            assertAllClose(got, expected, 1e-4, 1e-5, "chained MLP with a NaN row");
        }
    }

    /**
     * 16 -> 512 -> 16 -> 512 -> 16: a narrow value followed by a wide one, over many chunks. Were the planner to put
     * a later layer's output where an earlier value's later rows wait, the first chunk would overwrite them.
     */
    @Test
    void layersThatWidenAgainKeepEveryChunksRows() {
        Block net = new Sequential().add(new Dense(512, Activation.RELU, true, 16), new Dense(16, Activation.TANH, true, 512),
                new Dense(512, Activation.GELU, true, 16), new Dense(16, Activation.NONE, true, 512)).setSeed(5);
        Signature signature = Signature.builder().input("x", Shape.batched(16)).build();
        int batch = 1000;
        try (CompiledModel model = Kiln.compile(net, signature); Executor executor = model.newExecutor(batch)) {
            List<DenseChainKernel> chains = chains(executor);
            assertThat(chains).hasSize(1);
            assertThat(chains.get(0).chunk()).as("rows per chunk").isLessThan(batch / 3);
            float[] x = gaussian(batch * 16, 8);
            assertAllClose(DnnlChainKernelTest.run(executor, x, batch), eager(net, 16, x, batch), 1e-4, 1e-5, "widening chain over several chunks");
        }
    }

    /**
     * The seed MLP at 1,024 rows (4 chunks of 256): no off-heap bytes per call once every chunk size has its plan.
     * Heap bytes per call are {@code ExecutorAllocationTest}'s: its batch of 1,024 rows runs through this chain too,
     * after a warm-up long enough for C2 to compile the Vector API epilogue (before that, vectors are boxed).
     */
    @Test
    void steadyStateCallsAllocateNoOffHeapMemory() {
        Block mlp = dev.kiln.engine.zoo.ModelZoo.seedMlp();
        Signature signature = Signature.builder().input("x", Shape.batched(512)).build();
        int batch = 1024;
        float[] x = gaussian(batch * 512, 1);
        float[] out = new float[batch * 2];
        long before = CpuBackend.offHeapBytes();
        try (CompiledModel model = Kiln.compile(mlp, signature); Executor executor = model.newExecutor(batch)) {
            assertThat(chains(executor)).hasSize(1);
            assertThat(chains(executor).get(0).chunk()).isEqualTo(288);
            for (int i = 0; i < 5; i++) {
                call(executor, x, out, batch);
                call(executor, x, out, 700);
            }
            long offHeap = CpuBackend.offHeapBytes();
            for (int i = 0; i < 20; i++) {
                call(executor, x, out, batch);
                call(executor, x, out, 700);
            }
            // At most zero: pointers other tests left to the garbage collector may be freed meanwhile.
            assertThat(CpuBackend.offHeapBytes() - offHeap).as("off-heap bytes allocated by 40 calls").isLessThanOrEqualTo(0);
        }
        assertThat(CpuBackend.offHeapBytes()).as("off-heap bytes after closing").isLessThanOrEqualTo(before);
    }

    private static void call(Executor executor, float[] x, float[] out, int batch) {
        executor.setInput(0, x, 0, batch);
        executor.run(batch);
        executor.getOutput(0, out, 0);
    }
}
