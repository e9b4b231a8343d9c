package dev.kiln.jobs.bench;

import dev.kiln.engine.Kiln;
import dev.kiln.engine.backend.cuda.CudaBackend;
import dev.kiln.engine.exec.CompiledModel;
import dev.kiln.engine.exec.Executor;
import dev.kiln.engine.ir.Graph;
import dev.kiln.engine.pass.PassPipeline;
import dev.kiln.engine.tensor.TensorData;
import dev.kiln.format.onnx.OnnxImporter;
import dev.kiln.format.safetensors.Safetensors;

import java.nio.FloatBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

/**
 * The GPU check (scripts/gpu-check.sh runs it on a GPU machine; it needs no Spark and no ND4J): the cuda backend
 * against PyTorch's own outputs for each reference model (1e-4 relative, FP32 GEMMs: TF32 off unless
 * {@code -Dkiln.cuda.tf32=true}), then the seed MLP's throughput at batch 4096 and 65536 beside the host-to-device
 * bandwidth measured in the same run, and the fraction of the bandwidth bound (2 KB of input per row) reached; the
 * timed batches are PyTorch's MLP inputs repeated, and every row of them is checked against PyTorch's output.
 * Prints a Markdown table; exits 1 when a model does not match.
 *
 * <p>Usage: {@code GpuCheck MODELS_DIR [--device N] [--reps R] [--batches 4096,65536] [--chunks auto,2,4]} (chunks: how
 * many pieces a batch is cut into so that copies overlap compute, {@code -Dkiln.cuda.chunks}, or {@code auto}: Kiln's
 * rule; one table row per value).
 */
public final class GpuCheck {
    private static final String USAGE = "GpuCheck MODELS_DIR [--device N] [--reps R] [--batches 4096,65536] [--chunks auto,2,4]";

    private GpuCheck() {
    }

    public static void main(String[] args) throws Exception {
        Path models = Path.of(args.length > 0 ? args[0] : "../shared/models");
        int device = 0;
        int reps = 5;
        long[] batches = {4096, 65536};
        String[] chunkCounts = {"auto"};
        for (int i = 1; i + 1 < args.length; i += 2) {
            switch (args[i]) {
                case "--device" -> device = Integer.parseInt(args[i + 1]);
                case "--reps" -> reps = Integer.parseInt(args[i + 1]);
                case "--batches" -> batches = Arrays.stream(args[i + 1].split(",")).mapToLong(Long::parseLong).toArray();
                case "--chunks" -> chunkCounts = args[i + 1].split(",");
                default -> throw new IllegalArgumentException("Unknown option " + args[i] + "; usage: " + USAGE);
            }
        }
        CudaBackend gpu = CudaBackend.forDevice(device);
        System.out.println("# Kiln GPU check on " + gpu.device());
        System.out.println();
        System.out.println("| model | rows | max abs error | max rel error | result |");
        System.out.println("|---|---|---|---|---|");
        boolean ok = true;
        for (String name : List.of("mlp", "cnn", "encoder")) {
            Path dir = models.resolve(name);
            if (!Files.exists(dir.resolve("model.onnx"))) {
                System.out.println("| " + name + " | - | - | - | missing " + dir + " |");
                ok = false;
                continue;
            }
            ok &= check(name, dir, gpu);
        }
        ok &= checkNanRow(models.resolve("mlp"), gpu);
        System.out.println();
        double bandwidth = gpu.hostToDeviceBandwidth(256L << 20, reps);
        System.out.printf("Host-to-device bandwidth (256 MiB from page-locked memory, median of %d): %.2f GB/s%n%n", reps, bandwidth / 1e9);
        System.out.println("| seed MLP batch | chunks | rows/s (median of " + reps + ") | min-max | bandwidth bound (rows/s, 2 KB/row) | fraction of bound |");
        System.out.println("|---|---|---|---|---|---|");
        Graph mlp = OnnxImporter.importModel(models.resolve("mlp").resolve("model.onnx"));
        float[] inputRows = only(Safetensors.read(models.resolve("mlp").resolve("inputs.safetensors")));
        float[] expectedRows = only(Safetensors.read(models.resolve("mlp").resolve("expected.safetensors")));
        try (CompiledModel model = Kiln.compile(mlp, PassPipeline.standard(), gpu)) {
            for (long batch : batches) {
                for (String chunks : chunkCounts) {
                    if (chunks.equals("auto")) {
                        System.clearProperty("kiln.cuda.chunks");
                    } else {
                        System.setProperty("kiln.cuda.chunks", Integer.toString(Integer.parseInt(chunks)));
                    }
                    double[] rates;
                    try {
                        rates = throughput(model, batch, reps, inputRows, expectedRows);
                    } catch (IllegalStateException e) {
                        System.out.printf("| %,d | %s | FAIL: %s | | | |%n", batch, chunks, e.getMessage());
                        ok = false;
                        continue;
                    }
                    double bound = bandwidth / (512 * 4);
                    System.out.printf("| %,d | %s | %,.0f | %,.0f-%,.0f | %,.0f | %.0f%% |%n", batch, chunks, rates[reps / 2], rates[0], rates[reps - 1],
                            bound, 100 * rates[reps / 2] / bound);
                }
            }
        }
        ok &= queueTable(mlp, gpu, inputRows, expectedRows);
        System.exit(ok ? 0 : 1);
    }

    private static boolean check(String name, Path dir, CudaBackend gpu) {
        Graph graph = OnnxImporter.importModel(dir.resolve("model.onnx"));
        Map<String, TensorData> inputs = Safetensors.read(dir.resolve("inputs.safetensors"));
        Map<String, TensorData> expected = Safetensors.read(dir.resolve("expected.safetensors"));
        try (CompiledModel model = Kiln.compile(graph, PassPipeline.standard(), gpu)) {
            Map<String, TensorData> actual = model.run(inputs);
            double maxAbs = 0;
            double maxRel = 0;
            boolean pass = true;
            long rows = 0;
            for (Map.Entry<String, TensorData> e : expected.entrySet()) {
                float[] want = e.getValue().toFloatArray();
                float[] got = actual.get(e.getKey()).toFloatArray();
                rows = e.getValue().shape()[0];
                if (got.length != want.length) {
                    System.out.println("| " + name + " | " + rows + " | - | - | FAIL: " + got.length + " values, expected " + want.length + " |");
                    return false;
                }
                for (int i = 0; i < want.length; i++) {
                    double abs = Math.abs(got[i] - want[i]);
                    maxAbs = Math.max(maxAbs, abs);
                    maxRel = Math.max(maxRel, abs / Math.max(1e-6, Math.abs(want[i])));
                    pass &= matches(got[i], want[i]);
                }
            }
            System.out.printf("| %s | %d | %.2e | %.2e | %s |%n", name, rows, maxAbs, maxRel, pass ? "PASS" : "FAIL (1e-4 relative + 1e-5)");
            return pass;
        } catch (RuntimeException e) {
            System.out.println("| " + name + " | - | - | - | FAIL: " + e.getMessage().replace('|', '/').replace('\n', ' ') + " |");
            return false;
        }
    }

    /**
     * A NaN in one input row must reach that row's outputs (PyTorch: relu(NaN) = NaN; a GEMM epilogue computing
     * max(x, 0) could map it to 0 and hide the bad input), and leave the other rows as PyTorch computes them.
     */
    private static boolean checkNanRow(Path dir, CudaBackend gpu) {
        Graph graph = OnnxImporter.importModel(dir.resolve("model.onnx"));
        Map<String, TensorData> inputs = Safetensors.read(dir.resolve("inputs.safetensors"));
        float[] expected = only(Safetensors.read(dir.resolve("expected.safetensors")));
        Map.Entry<String, TensorData> input = inputs.entrySet().iterator().next();
        float[] x = input.getValue().toFloatArray();
        long[] shape = input.getValue().shape();
        int width = (int) (x.length / shape[0]);
        int badRow = 3;
        x[badRow * width + 7] = Float.NaN;
        try (CompiledModel model = Kiln.compile(graph, PassPipeline.standard(), gpu)) {
            float[] got = only(model.run(Map.of(input.getKey(), TensorData.ofFloats(shape, x))));
            int outWidth = (int) (got.length / shape[0]);
            boolean pass = true;
            for (int r = 0; r < shape[0]; r++) {
                for (int j = 0; j < outWidth; j++) {
                    float g = got[r * outWidth + j];
                    float want = expected[r * outWidth + j];
                    pass &= r == badRow ? Float.isNaN(g) : matches(g, want);
                }
            }
            System.out.printf("| mlp, a NaN in row %d | %d | - | - | %s |%n", badRow, shape[0],
                    pass ? "PASS (that row NaN, the others as PyTorch)" : "FAIL: " + Arrays.toString(Arrays.copyOfRange(got, badRow * outWidth, badRow * outWidth + outWidth)));
            return pass;
        }
    }

    /**
     * Rows per second of {@code reps} runs at {@code batch} (inputs staged once in the executor's pinned buffer), sorted.
     * The batch is PyTorch's input rows repeated, so every output row of the last run is checked against PyTorch's
     * output for its input row: the full batch, every chunk, both lanes.
     */
    private static double[] throughput(CompiledModel model, long batch, int reps, float[] inputRows, float[] expectedRows) {
        try (Executor executor = model.newExecutor(batch)) {
            FloatBuffer in = executor.inputBuffer(0);
            int offset = executor.inputOffset(0);
            int width = 512;
            int refRows = inputRows.length / width;
            for (long r = 0; r < batch; r++) {
                in.put((int) (offset + r * width), inputRows, (int) (r % refRows) * width, width);
            }
            for (int w = 0; w < 3; w++) {
                executor.run(batch);
            }
            double[] rates = new double[reps];
            for (int r = 0; r < reps; r++) {
                long start = System.nanoTime();
                executor.run(batch);
                rates[r] = batch * 1e9 / (System.nanoTime() - start);
            }
            Arrays.sort(rates);
            int outWidth = expectedRows.length / refRows;
            float[] out = new float[(int) (batch * outWidth)];
            executor.getOutput(0, out, 0);
            for (long r = 0; r < batch; r++) {
                for (int j = 0; j < outWidth; j++) {
                    float want = expectedRows[(int) (r % refRows) * outWidth + j];
                    float got = out[(int) (r * outWidth + j)];
                    if (!matches(got, want)) {
                        throw new IllegalStateException(String.format("Batch %d, row %d, output %d: %s, PyTorch says %s", batch, r, j, got, want));
                    }
                }
            }
            return rates;
        }
    }

    /**
     * Spark's shape of the load: task threads each hand 1,024-row requests to the one device queue (as
     * {@code KilnModel} does with a GPU), with requests run one by one and with waiting requests scored together.
     * Every output row is checked against PyTorch's.
     */
    private static boolean queueTable(Graph mlp, CudaBackend gpu, float[] inputRows, float[] expectedRows) throws Exception {
        int threads = 8;
        int requestRows = 1024;
        int requests = 200;
        System.out.println();
        boolean ok = true;
        try (CompiledModel model = Kiln.compile(mlp, PassPipeline.standard(), gpu)) {
            try (Executor staging = model.newExecutor(8192)) {
                float[] rows = new float[8192 * 512];
                double[] rates = new double[7];
                for (int r = 0; r < rates.length; r++) {
                    long start = System.nanoTime();
                    staging.inputBuffer(0).put(staging.inputOffset(0), rows, 0, rows.length);
                    rates[r] = 4.0 * rows.length / (System.nanoTime() - start);
                }
                Arrays.sort(rates);
                System.out.printf("Host copy of 16 MiB from a Java array into page-locked staging, one thread, median of %d: %.1f GB/s%n%n",
                        rates.length, rates[rates.length / 2]);
            }
            System.out.println("| device queue: " + threads + " threads x " + requests + " requests of " + requestRows + " rows | rows/s | result |");
            System.out.println("|---|---|---|");
            for (int variant = 0; variant < 3; variant++) {
                boolean together = variant > 0;
                int[] in = {512};
                int[] out = {expectedRows.length / (inputRows.length / 512)};
                java.util.List<Executor> executors = new java.util.ArrayList<>();
                for (int e = 0; e < (variant == 2 ? 2 : 1); e++) {
                    executors.add(model.newExecutor(requestRows));
                }
                String label = switch (variant) {
                    case 0 -> "one executor, one request per device run";
                    case 1 -> "one executor, waiting requests scored together";
                    default -> "two executors, waiting requests scored together (Spark's default)";
                };
                try (var queue = together ? new dev.kiln.engine.exec.DeviceQueue("cuda:0", executors, in, out)
                        : new dev.kiln.engine.exec.DeviceQueue("cuda:0", executors, in, out, requestRows)) {
                    float[] x = new float[requestRows * 512];
                    int refRows = inputRows.length / 512;
                    for (int r = 0; r < requestRows; r++) {
                        System.arraycopy(inputRows, (r % refRows) * 512, x, r * 512, 512);
                    }
                    for (int w = 0; w < 20; w++) {
                        queue.run(new float[][] {x}, requestRows, new float[][] {new float[requestRows * out[0]]});
                    }
                    var pool = java.util.concurrent.Executors.newFixedThreadPool(threads);
                    long start = System.nanoTime();
                    java.util.List<java.util.concurrent.Future<String>> results = new java.util.ArrayList<>();
                    for (int t = 0; t < threads; t++) {
                        results.add(pool.submit(() -> {
                            float[] y = new float[requestRows * out[0]];
                            String failure = null;
                            for (int q = 0; q < requests; q++) {
                                java.util.Arrays.fill(y, Float.NaN);
                                queue.run(new float[][] {x}, requestRows, new float[][] {y});
                                for (int i = 0; i < y.length && failure == null; i++) {
                                    float want = expectedRows[((i / out[0]) % refRows) * out[0] + i % out[0]];
                                    if (!matches(y[i], want)) {
                                        failure = "request " + q + " value " + i + ": " + y[i] + ", PyTorch says " + want;
                                    }
                                }
                            }
                            return failure;
                        }));
                    }
                    String failure = null;
                    for (var f : results) {
                        String r = f.get();
                        failure = failure != null ? failure : r;
                    }
                    double seconds = (System.nanoTime() - start) / 1e9;
                    pool.shutdown();
                    ok &= failure == null;
                    System.out.printf("| %s | %,.0f | %s |%n", label,
                            (double) threads * requests * requestRows / seconds, failure == null ? "PASS" : "FAIL: " + failure);
                }
            }
        }
        return ok;
    }

    /** The check's tolerance against PyTorch: 1e-4 relative plus 1e-5 absolute; NaN never matches. */
    private static boolean matches(float got, float want) {
        return Math.abs(got - want) <= 1e-5 + 1e-4 * Math.abs(want);
    }

    /** All values of the one tensor in a safetensors file, as floats (the check models have one input, one output). */
    private static float[] only(Map<String, TensorData> tensors) {
        if (tensors.size() != 1) {
            throw new IllegalArgumentException("Expected one tensor, got " + tensors.keySet());
        }
        return tensors.values().iterator().next().toFloatArray();
    }
}
