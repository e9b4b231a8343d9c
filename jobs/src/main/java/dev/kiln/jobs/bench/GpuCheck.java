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
 * bandwidth measured in the same run, and the fraction of the bandwidth bound (2 KB of input per row) reached.
 * Prints a Markdown table; exits 1 when a model does not match.
 *
 * <p>Usage: {@code GpuCheck MODELS_DIR [--device N] [--reps R] [--batches 4096,65536] [--chunks 4,8]} (chunks: how many
 * pieces a batch is cut into so that copies overlap compute, {@code -Dkiln.cuda.chunks}; one table row per value).
 */
public final class GpuCheck {
    private static final String USAGE = "GpuCheck MODELS_DIR [--device N] [--reps R] [--batches 4096,65536] [--chunks 4,8]";

    private GpuCheck() {
    }

    public static void main(String[] args) throws Exception {
        Path models = Path.of(args.length > 0 ? args[0] : "../shared/models");
        int device = 0;
        int reps = 5;
        long[] batches = {4096, 65536};
        int[] chunkCounts = {4};
        for (int i = 1; i + 1 < args.length; i += 2) {
            switch (args[i]) {
                case "--device" -> device = Integer.parseInt(args[i + 1]);
                case "--reps" -> reps = Integer.parseInt(args[i + 1]);
                case "--batches" -> batches = Arrays.stream(args[i + 1].split(",")).mapToLong(Long::parseLong).toArray();
                case "--chunks" -> chunkCounts = Arrays.stream(args[i + 1].split(",")).mapToInt(Integer::parseInt).toArray();
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
        System.out.println();
        double bandwidth = gpu.hostToDeviceBandwidth(256L << 20, reps);
        System.out.printf("Host-to-device bandwidth (256 MiB from page-locked memory, median of %d): %.2f GB/s%n%n", reps, bandwidth / 1e9);
        System.out.println("| seed MLP batch | chunks | rows/s (median of " + reps + ") | min-max | bandwidth bound (rows/s, 2 KB/row) | fraction of bound |");
        System.out.println("|---|---|---|---|---|---|");
        Graph mlp = OnnxImporter.importModel(models.resolve("mlp").resolve("model.onnx"));
        try (CompiledModel model = Kiln.compile(mlp, PassPipeline.standard(), gpu)) {
            for (long batch : batches) {
                for (int chunks : chunkCounts) {
                    System.setProperty("kiln.cuda.chunks", Integer.toString(chunks));
                    double[] rates = throughput(model, batch, reps);
                    double bound = bandwidth / (512 * 4);
                    System.out.printf("| %,d | %d | %,.0f | %,.0f-%,.0f | %,.0f | %.0f%% |%n", batch, chunks, rates[reps / 2], rates[0], rates[reps - 1],
                            bound, 100 * rates[reps / 2] / bound);
                }
            }
        }
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
                    pass &= abs <= 1e-5 + 1e-4 * Math.abs(want[i]);
                }
            }
            System.out.printf("| %s | %d | %.2e | %.2e | %s |%n", name, rows, maxAbs, maxRel, pass ? "PASS" : "FAIL (1e-4 relative + 1e-5)");
            return pass;
        } catch (RuntimeException e) {
            System.out.println("| " + name + " | - | - | - | FAIL: " + e.getMessage().replace('|', '/').replace('\n', ' ') + " |");
            return false;
        }
    }

    /** Rows per second of {@code reps} runs at {@code batch} (inputs staged once in the executor's pinned buffer), sorted. */
    private static double[] throughput(CompiledModel model, long batch, int reps) {
        try (Executor executor = model.newExecutor(batch)) {
            FloatBuffer in = executor.inputBuffer(0);
            int offset = executor.inputOffset(0);
            long n = batch * 512;
            for (long i = 0; i < n; i++) {
                in.put((int) (offset + i), (float) Math.sin(i * 0.001));
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
            return rates;
        }
    }
}
