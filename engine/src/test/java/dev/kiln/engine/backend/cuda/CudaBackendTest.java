package dev.kiln.engine.backend.cuda;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.Kiln;
import dev.kiln.engine.KilnException;
import dev.kiln.engine.TestGraphs;
import dev.kiln.engine.backend.Backend;
import dev.kiln.engine.exec.CompiledModel;
import dev.kiln.engine.exec.Executor;
import dev.kiln.engine.exec.RandomModelsAccess;
import dev.kiln.engine.ir.Signature;
import dev.kiln.engine.nn.Block;
import dev.kiln.engine.nn.Sequential;
import dev.kiln.engine.tensor.Shape;
import dev.kiln.engine.tensor.Tensor;
import dev.kiln.engine.tensor.TensorData;
import dev.kiln.engine.zoo.ModelZoo;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.Arrays;

import static dev.kiln.engine.TestGraphs.assertAllClose;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * The cuda backend above the device: lowering, weights, staging, chunked lanes and resource ownership, run on
 * {@link EmulatedCudaApi} (kernels.cu written again in Java) against eager ND4J, the independent implementation.
 * The kernels themselves run on a GPU only in scripts/gpu-check.sh.
 */
class CudaBackendTest {
    /** Runs {@code block} compiled on the emulated GPU over {@code x} and returns its only output. */
    private static float[] runOnGpu(EmulatedCudaApi gpu, Block block, Signature signature, TensorData x) {
        try (CompiledModel model = Kiln.compile(block, signature)) {
            Backend backend = new CudaBackend("cuda:emulated", gpu);
            try (Backend.LoadedModel loaded = backend.load(model); Executor executor = loaded.newExecutor(x.shape()[0])) {
                float[] values = x.toFloatArray();
                int batch = (int) x.shape()[0];
                executor.setInput(0, values, 0, batch);
                executor.run(batch);
                float[] out = new float[executor.outputElements(0)];
                executor.getOutput(0, out, 0);
                return out;
            }
        }
    }

    private static float[] eager(Block block, TensorData x) {
        return block.forward(Tensor.of(x)).toFloatArray();
    }

    @ParameterizedTest
    @ValueSource(strings = {"seed-mlp", "small-cnn", "tiny-encoder"})
    void zooModelsMatchEagerNd4jAndFreeEveryDeviceAndPinnedBuffer(String name) {
        ModelZoo.Entry entry = ModelZoo.get(name);
        long[] rowShape = entry.signature().inputs().get(0).shape().resolve(1);
        long[] shape = rowShape.clone();
        shape[0] = 5;
        TensorData x = TestGraphs.random(shape, 11);
        EmulatedCudaApi gpu = new EmulatedCudaApi();
        float[] actual = runOnGpu(gpu, entry.block(), entry.signature(), x);
        assertAllClose(actual, eager(entry.block(), x), 2e-4, 2e-5, name + " on the emulated GPU vs eager ND4J");
        assertThat(gpu.liveDeviceBlocks()).as("device blocks left").isZero();
        assertThat(gpu.livePinnedBuffers()).as("pinned buffers left").isZero();
    }

    @Test
    void aLargeBatchIsCutIntoChunksThatAlternateBetweenTwoStreamsAndEveryRowComesBack() {
        ModelZoo.Entry entry = ModelZoo.get("seed-mlp");
        int batch = 2_050;  // capacity 2050, four chunks asked for: lanes of ceil(2050 / 4) = 513 rows
        TensorData x = TestGraphs.random(new long[] {batch, 512}, 3);
        EmulatedCudaApi gpu = new EmulatedCudaApi();
        float[] actual;
        System.setProperty("kiln.cuda.chunks", "4");
        try {
            actual = runOnGpu(gpu, entry.block(), entry.signature(), x);
        } finally {
            System.clearProperty("kiln.cuda.chunks");
        }
        assertAllClose(actual, eager(entry.block(), x), 2e-4, 2e-5, "seed MLP, batch " + batch);
        // Four chunks of 513, 513, 513, 511 rows: copy in, three GEMMs, copy out, on streams 1, 2, 1, 2.
        java.util.List<String> work = gpu.log.stream().filter(s -> !s.startsWith("0:")).toList();
        java.util.List<String> runs = work.subList(work.size() - 20, work.size());
        for (int chunk = 0; chunk < 4; chunk++) {
            long stream = runs.get(chunk * 5).charAt(0) - '0';
            assertThat(runs.subList(chunk * 5, chunk * 5 + 5)).as("chunk %d", chunk)
                    .containsExactly(stream + ":h2d", stream + ":gemm", stream + ":gemm", stream + ":gemm", stream + ":d2h");
            if (chunk > 0) {
                assertThat(stream).as("chunk %d alternates lanes", chunk).isNotEqualTo(runs.get((chunk - 1) * 5).charAt(0) - '0');
            }
        }
    }

    @Test
    void chunksAreAtLeastEightMebibytesOfInputAndAtMostEight() {
        // The seed MLP's rows are 512 floats = 2 KiB: 4,096 rows per 8 MiB chunk.
        assertThat(CudaExecutor.chunks(1_024, 2_048)).isEqualTo(1);
        assertThat(CudaExecutor.chunks(4_096, 2_048)).isEqualTo(1);
        assertThat(CudaExecutor.chunks(8_191, 2_048)).isEqualTo(1);
        assertThat(CudaExecutor.chunks(8_192, 2_048)).isEqualTo(2);
        assertThat(CudaExecutor.chunks(16_384, 2_048)).isEqualTo(4);
        assertThat(CudaExecutor.chunks(24_576, 2_048)).isEqualTo(6);
        assertThat(CudaExecutor.chunks(65_536, 2_048)).isEqualTo(8);
        assertThat(CudaExecutor.laneCapacity(65_536, 2_048)).isEqualTo(8_192);
        assertThat(CudaExecutor.laneCapacity(8_193, 2_048)).isEqualTo(4_097);
        // Tiny rows: 40 bytes, 20 MiB at 524,288 rows -> 2 chunks; never chunks under 256 rows.
        assertThat(CudaExecutor.chunks(524_288, 40)).isEqualTo(2);
        assertThat(CudaExecutor.chunks(300, 1 << 20)).isEqualTo(1);
        assertThat(CudaExecutor.chunks(1, 0)).isEqualTo(1);
        System.setProperty("kiln.cuda.chunks", "3");
        try {
            assertThat(CudaExecutor.chunks(65_536, 2_048)).isEqualTo(3);
            assertThat(CudaExecutor.chunks(2, 2_048)).isEqualTo(2);
            System.setProperty("kiln.cuda.chunks", "0");
            assertThatThrownBy(() -> CudaExecutor.chunks(10, 10)).hasMessageContaining("-Dkiln.cuda.chunks must be at least 1, got 0");
        } finally {
            System.clearProperty("kiln.cuda.chunks");
        }
    }

    @Test
    void generatedModelsMatchEagerNd4j() {
        java.util.List<String> refused = new java.util.ArrayList<>();
        for (long seed = 0; seed < 40; seed++) {
            RandomModelsAccess.Model model = RandomModelsAccess.create(seed);
            int batch = 1 + (int) (seed * 7 % 37);
            TensorData x = TestGraphs.random(new long[] {batch, model.inputWidth()}, seed);
            Signature signature = Signature.builder().input("x", Shape.batched(model.inputWidth())).output("y").build();
            EmulatedCudaApi gpu = new EmulatedCudaApi();
            float[] actual;
            try {
                actual = runOnGpu(gpu, model.block(), signature, x);
            } catch (UnsupportedOperationException e) {
                assertThat(e).hasMessageContaining("The cuda backend does not support").hasMessageContaining("node");
                refused.add(seed + ": " + e.getMessage());
                continue;
            }
            assertAllClose(actual, eager(model.block(), x), 2e-4, 2e-5, "generated model " + seed);
            assertThat(gpu.liveDeviceBlocks()).isZero();
        }
        assertThat(refused).as("generated models the cuda backend refused").hasSizeLessThanOrEqualTo(4);
    }

    @Test
    void anOpWithoutAGpuKernelIsRefusedAtLoadNamingTheOpAndNode() {
        Block padded = new Sequential().add(new dev.kiln.engine.nn.Dense(3), new PadBlock());
        Signature signature = Signature.builder().input("x", Shape.batched(4)).output("y").build();
        try (CompiledModel model = Kiln.compile(padded, signature)) {
            EmulatedCudaApi gpu = new EmulatedCudaApi();
            assertThatThrownBy(() -> new CudaBackend("cuda:emulated", gpu).load(model))
                    .isInstanceOf(UnsupportedOperationException.class)
                    .hasMessageContaining("no GPU kernel for op 'pad'")
                    .hasMessageContaining("node ")
                    .hasMessageContaining("it runs: dense, matmul");
            assertThat(gpu.liveDeviceBlocks()).as("nothing uploaded before the check").isZero();
        }
    }

    /** A block using an op the cuda backend has no kernel for (pad). */
    private static final class PadBlock extends dev.kiln.engine.nn.UnaryBlock {
        @Override
        protected Tensor forwardInternal(Tensor x) {
            return x.pad(new long[] {0, 1, 0, 1}, "constant", 0f);
        }
    }

    @Test
    void outOfDeviceMemoryIsReportedForHalvingAndLeavesOnlyTheWeights() {
        ModelZoo.Entry entry = ModelZoo.get("seed-mlp");
        try (CompiledModel model = Kiln.compile(entry.block(), entry.signature())) {
            long weights = 4L * (512 * 256 + 256 + 256 * 128 + 128 + 128 * 2 + 2);
            EmulatedCudaApi gpu = new EmulatedCudaApi(weights + 4 * 100_000L);
            try (Backend.LoadedModel loaded = new CudaBackend("cuda:emulated", gpu).load(model)) {
                int blocksWithWeights = gpu.liveDeviceBlocks();
                assertThatThrownBy(() -> loaded.newExecutor(4_096))
                        .isInstanceOf(KilnException.class)
                        .satisfies(e -> assertThat(((KilnException) e).code()).isEqualTo(ErrorCode.DEVICE_OUT_OF_MEMORY));
                assertThat(gpu.liveDeviceBlocks()).as("device blocks after the failed executor").isEqualTo(blocksWithWeights);
                assertThat(gpu.livePinnedBuffers()).isZero();
                try (Executor small = loaded.newExecutor(16)) {
                    assertThat(small.capacity()).isEqualTo(16);
                }
            }
            assertThat(gpu.liveDeviceBlocks()).isZero();
        }
    }

    /** Device bytes of {@code model}'s weights, then of an executor for each capacity (measured on an unlimited device). */
    private static long[] deviceBytes(CompiledModel model, long... capacities) {
        EmulatedCudaApi probe = new EmulatedCudaApi();
        long[] out = new long[capacities.length + 1];
        try (Backend.LoadedModel loaded = new CudaBackend("cuda:emulated", probe).load(model)) {
            out[0] = probe.liveDeviceBytes();
            for (int i = 0; i < capacities.length; i++) {
                try (Executor e = loaded.newExecutor(capacities[i])) {
                    out[i + 1] = probe.liveDeviceBytes() - out[0];
                }
            }
        }
        return out;
    }

    @Test
    void growingFreesTheOldDeviceBuffersFirstAndKeepsThemWhenTheNewOnesDoNotFit() {
        ModelZoo.Entry entry = ModelZoo.get("seed-mlp");
        TensorData x = TestGraphs.random(new long[] {4_096, 512}, 21);
        float[] expected = eager(entry.block(), x);
        try (CompiledModel model = Kiln.compile(entry.block(), entry.signature())) {
            // Device bytes of the weights, of an executor for 64 rows and of one for 4,096 rows.
            long[] bytes = deviceBytes(model, 64, 4_096);
            long weights = bytes[0];
            long small = bytes[1];
            long large = bytes[2];
            // Room for the large executor alone, not for the small and the large at once: growing still works.
            EmulatedCudaApi gpu = new EmulatedCudaApi(weights + large + small / 2);
            try (Backend.LoadedModel loaded = new CudaBackend("cuda:emulated", gpu).load(model);
                 Executor executor = loaded.newExecutor(64)) {
                executor.setInput(0, x.toFloatArray(), 0, 4_096);
                assertThat(executor.capacity()).isEqualTo(4_096);
                assertThat(gpu.liveDeviceBytes()).isEqualTo(weights + large);
                executor.run(4_096);
                float[] actual = new float[4_096 * 2];
                executor.getOutput(0, actual, 0);
                assertAllClose(actual, expected, 2e-4, 2e-5, "grown to 4,096 rows next to full memory");
            }
            // Room for the small executor only: growing fails as out of memory and the executor still runs 64 rows.
            EmulatedCudaApi tight = new EmulatedCudaApi(weights + small + small / 2);
            try (Backend.LoadedModel loaded = new CudaBackend("cuda:emulated", tight).load(model);
                 Executor executor = loaded.newExecutor(64)) {
                assertThatThrownBy(() -> executor.ensureCapacity(4_096)).isInstanceOf(KilnException.class)
                        .satisfies(e -> assertThat(((KilnException) e).code()).isEqualTo(ErrorCode.DEVICE_OUT_OF_MEMORY));
                assertThat(executor.capacity()).isEqualTo(64);
                assertThat(tight.liveDeviceBytes()).isEqualTo(weights + small);
                executor.setInput(0, x.toFloatArray(), 0, 64);
                executor.run(64);
                float[] actual = new float[64 * 2];
                executor.getOutput(0, actual, 0);
                assertAllClose(actual, java.util.Arrays.copyOf(expected, 128), 2e-4, 2e-5, "64 rows after a failed growth");
            }
            assertThat(tight.liveDeviceBlocks()).isZero();
            assertThat(tight.livePinnedBuffers()).isZero();
        }
    }

    @Test
    void growingAsksForHeadroomButSettlesForTheBatchWhenOnlyThatFits() {
        // From 64 rows, a 100-row batch grows to 128 (twice the capacity) when it can, else to exactly 100.
        ModelZoo.Entry entry = ModelZoo.get("seed-mlp");
        try (CompiledModel model = Kiln.compile(entry.block(), entry.signature())) {
            long[] bytes = deviceBytes(model, 100);
            long weights = bytes[0];
            long rows100 = bytes[1];
            EmulatedCudaApi gpu = new EmulatedCudaApi(weights + rows100);
            try (Backend.LoadedModel loaded = new CudaBackend("cuda:emulated", gpu).load(model);
                 Executor executor = loaded.newExecutor(64)) {
                executor.ensureCapacity(100);
                assertThat(executor.capacity()).isEqualTo(100);
            }
            EmulatedCudaApi roomy = new EmulatedCudaApi();
            try (Backend.LoadedModel loaded = new CudaBackend("cuda:emulated", roomy).load(model);
                 Executor executor = loaded.newExecutor(64)) {
                executor.ensureCapacity(100);
                assertThat(executor.capacity()).isEqualTo(128);
            }
        }
    }

    /** Takes {@code steal} bytes of device memory at the first allocation after one failed: another process, say. */
    private static final class MemoryThief implements CudaApi {
        final EmulatedCudaApi in;
        final long steal;
        boolean armed;
        boolean failed;
        long stolen;

        MemoryThief(EmulatedCudaApi in, long steal) {
            this.in = in;
            this.steal = steal;
        }

        @Override public String describe() { return in.describe(); }
        @Override public long malloc(long bytes) {
            if (armed && failed && stolen == 0) {
                stolen = in.malloc(steal);
            }
            try {
                return in.malloc(bytes);
            } catch (KilnException e) {
                failed |= armed;
                throw e;
            }
        }
        @Override public void free(long address) { in.free(address); }
        @Override public java.nio.ByteBuffer mallocHost(long bytes) { return in.mallocHost(bytes); }
        @Override public void freeHost(java.nio.ByteBuffer buffer) { in.freeHost(buffer); }
        @Override public long createStream() { return in.createStream(); }
        @Override public void destroyStream(long stream) { in.destroyStream(stream); }
        @Override public void copyToDevice(long dst, java.nio.ByteBuffer src, long off, long bytes, long stream) { in.copyToDevice(dst, src, off, bytes, stream); }
        @Override public void copyToHost(java.nio.ByteBuffer dst, long off, long src, long bytes, long stream) { in.copyToHost(dst, off, src, bytes, stream); }
        @Override public void synchronize(long stream) { in.synchronize(stream); }
        @Override public Launch prepare(String name, ArgKind... args) { return in.prepare(name, args); }
        @Override public void gemm(boolean transB, boolean relu, long a, long b, long bias, long c, long m, long n, long k, long count,
                                   long strideA, long strideB, long strideC, long stream) {
            in.gemm(transB, relu, a, b, bias, c, m, n, k, count, strideA, strideB, strideC, stream);
        }
        @Override public void close() { in.close(); }
    }

    @Test
    void aGrowthWhoseFreedMemoryIsTakenMeanwhileGoesOnWithSmallerLanes() {
        // Found by review: a growth that freed the old lanes, failed, and found the memory gone could not remake them,
        // and every later batch failed. Now the lanes come back as large as fits and the rows run in more chunks.
        ModelZoo.Entry entry = ModelZoo.get("seed-mlp");
        TensorData x = TestGraphs.random(new long[] {100, 512}, 31);
        float[] expected = eager(entry.block(), x);
        try (CompiledModel model = Kiln.compile(entry.block(), entry.signature())) {
            long[] bytes = deviceBytes(model, 64);
            long weights = bytes[0];
            long small = bytes[1];
            EmulatedCudaApi emulated = new EmulatedCudaApi(weights + small + small / 2);
            MemoryThief gpu = new MemoryThief(emulated, small);
            try (Backend.LoadedModel loaded = new CudaBackend("cuda:emulated", gpu).load(model);
                 Executor executor = loaded.newExecutor(64)) {
                gpu.armed = true;
                dev.kiln.engine.exec.HalvingRunner runner = new dev.kiln.engine.exec.HalvingRunner(executor, new int[] {512}, new int[] {2});
                float[] y = new float[200];
                runner.run(new float[][] {x.toFloatArray()}, 100, new float[][] {y});
                assertThat(gpu.stolen).as("the memory was taken during the growth").isNotZero();
                assertAllClose(y, expected, 2e-4, 2e-5, "100 rows after the growth lost its memory");
                assertThat(executor.capacity()).isEqualTo(64);
                emulated.free(gpu.stolen);
                gpu.armed = false;
                float[] again = new float[20];
                runner.run(new float[][] {java.util.Arrays.copyOf(x.toFloatArray(), 10 * 512)}, 10, new float[][] {again});
                assertAllClose(again, java.util.Arrays.copyOf(expected, 20), 2e-4, 2e-5, "10 rows once the memory is back");
            }
            assertThat(emulated.liveDeviceBlocks()).isZero();
            assertThat(emulated.livePinnedBuffers()).isZero();
        }
    }

    @Test
    void inputsBoundToDirectBuffersAreCopiedFromThereAndBadBindingsAreRefused() {
        ModelZoo.Entry entry = ModelZoo.get("seed-mlp");
        TensorData x = TestGraphs.random(new long[] {7, 512}, 5);
        EmulatedCudaApi gpu = new EmulatedCudaApi();
        try (CompiledModel model = Kiln.compile(entry.block(), entry.signature());
             Backend.LoadedModel loaded = new CudaBackend("cuda:emulated", gpu).load(model);
             Executor executor = loaded.newExecutor(7)) {
            java.nio.ByteBuffer arrow = java.nio.ByteBuffer.allocateDirect(7 * 512 * 4).order(java.nio.ByteOrder.LITTLE_ENDIAN);
            arrow.asFloatBuffer().put(x.toFloatArray());
            executor.bindInput(0, arrow);
            executor.run(7);
            float[] out = new float[14];
            executor.getOutput(0, out, 0);
            assertAllClose(out, eager(entry.block(), x), 2e-4, 2e-5, "bound input");
            assertThatThrownBy(() -> executor.bindInput(0, java.nio.ByteBuffer.allocate(7 * 512 * 4)))
                    .hasMessageContaining("needs a direct buffer of 14336 bytes for 7 rows, got a heap buffer");
            assertThatThrownBy(() -> executor.run(8)).hasMessageContaining("exceeds the executor's capacity 7");
        }
        assertThat(Arrays.asList(gpu.liveDeviceBlocks(), gpu.livePinnedBuffers())).containsExactly(0, 0);
    }

    @Test
    void withoutTheNvidiaDriverOpeningAGpuFailsWithOneClearError() {
        org.junit.jupiter.api.Assumptions.assumeTrue(dev.kiln.engine.backend.gpu.GpuInventory.query().isEmpty(), "this machine has a GPU");
        assertThatThrownBy(() -> CudaBackend.forDevice(0))
                .isInstanceOf(KilnException.class)
                .hasMessageContaining("Cannot open device cuda:0")
                .hasMessageContaining("libcuda.so.1")
                .hasMessageContaining("use device cpu");
    }

    /**
     * Every launch the lowering prepares for the zoo models names a kernel of kernels.cu with the same argument types
     * in the same order: the contract between the Java side and the CUDA C, checked without a compiler.
     */
    @Test
    void everyPreparedLaunchMatchesItsKernelSignatureInKernelsCu() {
        EmulatedCudaApi gpu = new EmulatedCudaApi();
        for (String name : ModelZoo.names()) {
            ModelZoo.Entry entry = ModelZoo.get(name);
            long[] shape = entry.signature().inputs().get(0).shape().resolve(2);
            runOnGpu(gpu, entry.block(), entry.signature(), TestGraphs.random(shape, 1));
        }
        java.util.Map<String, java.util.List<CudaApi.ArgKind>> declared = kernelSignatures(JavaCppCudaApi.kernelSource());
        assertThat(gpu.prepared).isNotEmpty();
        for (java.util.Map.Entry<String, java.util.List<CudaApi.ArgKind>> e : gpu.prepared.entrySet()) {
            assertThat(declared).as("kernels.cu kernels").containsKey(e.getKey());
            assertThat(e.getValue()).as("arguments of %s", e.getKey()).isEqualTo(declared.get(e.getKey()));
        }
        assertThat(declared.keySet()).contains("kiln_gemm", "kiln_conv2d", "kiln_pool2d", "kiln_layer_norm", "kiln_softmax", "kiln_binary");
    }

    /** {@code __global__ void name(type a, type b, ...)} of kernels.cu as argument kinds. */
    static java.util.Map<String, java.util.List<CudaApi.ArgKind>> kernelSignatures(String source) {
        java.util.Map<String, java.util.List<CudaApi.ArgKind>> out = new java.util.TreeMap<>();
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("__global__\\s+void\\s+(\\w+)\\s*\\(([^)]*)\\)").matcher(source);
        while (m.find()) {
            java.util.List<CudaApi.ArgKind> kinds = new java.util.ArrayList<>();
            for (String param : m.group(2).split(",")) {
                String p = param.trim().replaceAll("\\s+", " ");
                String type = p.substring(0, p.lastIndexOf(' ')).replace("const ", "").trim();
                kinds.add(type.endsWith("*") ? CudaApi.ArgKind.POINTER : type.equals("long long") ? CudaApi.ArgKind.LONG
                        : type.equals("int") ? CudaApi.ArgKind.INT : type.equals("float") ? CudaApi.ArgKind.FLOAT : null);
                assertThat(kinds.get(kinds.size() - 1)).as("C type '%s' of %s", type, m.group(1)).isNotNull();
            }
            out.put(m.group(1), kinds);
        }
        return out;
    }

    /** Where nvcc is installed (a developer machine; CI has none), kernels.cu compiles for Ampere and up. */
    @Test
    void kernelsCuCompilesWithNvccWhereItIsInstalled(@org.junit.jupiter.api.io.TempDir java.nio.file.Path dir) throws Exception {
        java.nio.file.Path nvcc = java.util.stream.Stream.of(System.getenv().getOrDefault("PATH", "").split(":"))
                .map(d -> java.nio.file.Path.of(d, "nvcc")).filter(java.nio.file.Files::isExecutable).findFirst().orElse(null);
        org.junit.jupiter.api.Assumptions.assumeTrue(nvcc != null, "nvcc is not installed");
        java.nio.file.Path cu = dir.resolve("kernels.cu");
        java.nio.file.Files.writeString(cu, JavaCppCudaApi.kernelSource());
        Process p = new ProcessBuilder(nvcc.toString(), "--ptx", "-arch=compute_80", "-o", dir.resolve("kernels.ptx").toString(), cu.toString())
                .redirectErrorStream(true).start();
        String output = new String(p.getInputStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
        assertThat(p.waitFor()).as("nvcc: %s", output).isZero();
        String ptx = java.nio.file.Files.readString(dir.resolve("kernels.ptx"));
        for (String kernel : kernelSignatures(JavaCppCudaApi.kernelSource()).keySet()) {
            assertThat(ptx).contains(".entry " + kernel);
        }
    }

    @Test
    void cublasLtIsToldEachOperandsTrueAlignment() {
        // Powers of two worked out by hand: 0x1000 is 256-aligned (the most cuBLASLt asks), 0x1040 only 64 (the memory
        // planner's alignment), and a batch stride of 3 floats (12 bytes) leaves 4.
        assertThat(JavaCppCudaApi.alignment(0x1000, 0)).isEqualTo(256);
        assertThat(JavaCppCudaApi.alignment(0x1040, 0)).isEqualTo(64);
        assertThat(JavaCppCudaApi.alignment(0x1000, 3)).isEqualTo(4);
        assertThat(JavaCppCudaApi.alignment(0x1000, 64)).isEqualTo(256);
    }
}
