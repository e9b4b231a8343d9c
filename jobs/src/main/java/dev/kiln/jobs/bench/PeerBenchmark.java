package dev.kiln.jobs.bench;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.Kiln;
import dev.kiln.engine.KilnException;
import dev.kiln.engine.backend.cpu.CpuBackend;
import dev.kiln.engine.exec.CompiledModel;
import dev.kiln.engine.exec.Executor;
import dev.kiln.engine.pass.PassPipeline;
import dev.kiln.engine.nn.Block;
import dev.kiln.engine.tensor.Tensor;
import dev.kiln.engine.tensor.TensorData;
import dev.kiln.engine.zoo.ModelZoo;
import dev.kiln.format.onnx.OnnxImporter;
import dev.kiln.format.safetensors.Safetensors;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.openblas.global.openblas_nolapack;

import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

/**
 * Kiln against ONNX Runtime on the same ONNX file, one thread, interleaved repetitions: Kiln eager (the reference
 * model's zoo block with the {@code weights.safetensors} beside the file, op by op on ND4J), Kiln compiled (imported from
 * the ONNX file) copying its input in from a {@code float[]} every call ({@code compiled}) and reading it in place from
 * a bound direct buffer ({@code compiled-bound}: the zero-copy path Spark's Arrow batches take, and the counterpart of
 * ONNX Runtime's reused tensors), ONNX Runtime with its input and output tensors created once and reused (pinned
 * outputs), and the sgemm ceiling: the model's three GEMMs alone through OpenBLAS ({@code ceiling}) and through
 * oneDNN's {@code dnnl_sgemm} ({@code ceiling-onednn}) at the same batch. Outputs of both Kiln modes are checked equal
 * (1e-5 relative) to ONNX Runtime's before timing. A benchmark, never a test.
 */
public final class PeerBenchmark {
    private PeerBenchmark() {
    }

    /** A timed call. */
    private interface Call {
        void call() throws OrtException;
    }

    public static List<SeedBenchmark.Result> run(Path onnx, List<Integer> batches, int calls, int rows, int repetitions, PrintStream log) throws Exception {
        return run(onnx, batches, List.of(1), calls, rows, repetitions, true, log);
    }

    /**
     * With {@code workerCounts}: each count T runs T workers at once, each with its own Kiln executor, ONNX Runtime
     * input/output tensors (one shared session, one intra-op thread) and ceiling GEMMs: the rate is all workers' rows
     * over the wall time, the µs/call one worker's. {@code withEager} false leaves Kiln eager out.
     */
    public static List<SeedBenchmark.Result> run(Path onnx, List<Integer> batches, List<Integer> workerCounts, int calls, int rows, int repetitions,
                                                 boolean withEager, PrintStream log) throws Exception {
        CpuBackend.setBlasThreads(1);
        List<SeedBenchmark.Result> results = new ArrayList<>();
        OrtEnvironment env = OrtEnvironment.getEnvironment();
        OrtSession.SessionOptions options = new OrtSession.SessionOptions();
        options.setIntraOpNumThreads(1);
        options.setInterOpNumThreads(1);
        options.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.ALL_OPT);
        try (OrtSession session = env.createSession(onnx.toString(), options);
             CompiledModel model = Kiln.compile(OnnxImporter.importModel(onnx), PassPipeline.standard(), CpuBackend.INSTANCE)) {
            long[] inShape = withBatch(model.signature().inputs().get(0).shape(), 1);
            long[] outShape = withBatch(model.signature().outputs().get(0).shape(), 1);
            long features = rowElements(inShape);
            long outWidth = rowElements(outShape);
            // The sgemm ceilings are the seed MLP's three GEMMs: only meaningful for that model.
            boolean seedMlp = inShape.length == 2 && inShape[1] == 512 && outWidth == 2;
            String inName = model.signature().inputs().get(0).name();
            String outName = model.signature().outputs().get(0).name();
            Block eager = withEager ? eagerBlock(onnx, log) : null;
            for (int batch : batches) {
                for (int threads : workerCounts) {
                    runOne(env, session, model, eager, inName, outName, inShape, outShape, seedMlp, batch, threads,
                            batch == 1 ? calls : Math.max(5, rows / batch), repetitions, results, log);
                }
            }
        }
        return results;
    }

    /**
     * ONNX Runtime's own per-node times ({@code SessionOptions.enableProfiling}) for {@code calls} calls at
     * {@code batch} rows, in a session of their own after the timed runs (its profiler's timestamps would slow the timed
     * session): node, operator, mean µs per call and share, beside Kiln's kernel profile ({@code --profile}).
     */
    public static void printOrtProfile(Path onnx, int batch, int calls, PrintStream log) throws Exception {
        Path dir = java.nio.file.Files.createTempDirectory("kiln-ort-profile");
        try {
            OrtEnvironment env = OrtEnvironment.getEnvironment();
            OrtSession.SessionOptions options = new OrtSession.SessionOptions();
            options.setIntraOpNumThreads(1);
            options.setInterOpNumThreads(1);
            options.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.ALL_OPT);
            options.enableProfiling(dir.resolve("ort").toString());
            String file;
            try (OrtSession session = env.createSession(onnx.toString(), options)) {
                String inName = session.getInputNames().iterator().next();
                String outName = session.getOutputNames().iterator().next();
                long[] inShape = ((ai.onnxruntime.TensorInfo) session.getInputInfo().get(inName).getInfo()).getShape();
                long[] outShape = ((ai.onnxruntime.TensorInfo) session.getOutputInfo().get(outName).getInfo()).getShape();
                inShape[0] = batch;
                outShape[0] = batch;
                float[] input = SeedBenchmark.randomInput(batch * (int) rowElements(inShape), 42);
                FloatBuffer in = ByteBuffer.allocateDirect(input.length * 4).order(ByteOrder.nativeOrder()).asFloatBuffer().put(input);
                in.rewind();
                FloatBuffer out = ByteBuffer.allocateDirect(batch * (int) rowElements(outShape) * 4).order(ByteOrder.nativeOrder()).asFloatBuffer();
                try (OnnxTensor inTensor = OnnxTensor.createTensor(env, in, inShape); OnnxTensor outTensor = OnnxTensor.createTensor(env, out, outShape)) {
                    for (int i = 0; i < calls; i++) {
                        try (OrtSession.Result ignored = session.run(Map.of(inName, inTensor), Map.of(outName, outTensor))) {
                            // Outputs land in the pinned tensor.
                        }
                    }
                }
                file = session.endProfiling();
            }
            // Chrome trace events; a node's compute is its "<name>_kernel_time" event, duration in µs.
            Map<String, double[]> nodes = new java.util.LinkedHashMap<>();
            Map<String, String> ops = new java.util.HashMap<>();
            for (com.fasterxml.jackson.databind.JsonNode event : new com.fasterxml.jackson.databind.ObjectMapper().readTree(Path.of(file).toFile())) {
                String name = event.path("name").asText();
                if (event.path("cat").asText().equals("Node") && name.endsWith("_kernel_time")) {
                    String node = name.substring(0, name.length() - "_kernel_time".length());
                    double[] sum = nodes.computeIfAbsent(node, k -> new double[2]);
                    sum[0] += event.path("dur").asDouble();
                    sum[1]++;
                    ops.put(node, event.path("args").path("op_name").asText());
                }
            }
            double total = nodes.values().stream().mapToDouble(v -> v[0]).sum();
            log.printf("ONNX Runtime's profile, batch %d, %d calls (node compute only):%n      us/call  share  node (operator)%n", batch, calls);
            for (Map.Entry<String, double[]> e : nodes.entrySet()) {
                double[] v = e.getValue();
                log.printf("  %11.1f %5.1f%%  %s (%s)%n", v[0] / v[1], 100 * v[0] / total, e.getKey(), ops.get(e.getKey()));
            }
        } finally {
            try (var files = java.nio.file.Files.walk(dir)) {
                files.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
    }

    /** Reference models by folder (../shared/models/NAME/model.onnx) and the zoo block that writes each with the block API. */
    private static final Map<String, String> ZOO = Map.of("mlp", "seed-mlp", "cnn", "small-cnn", "encoder", "tiny-encoder");

    /**
     * Kiln's eager mode for the same model: the zoo block written like the PyTorch module, with the
     * {@code weights.safetensors} beside the ONNX file (the same weights); null, with a line saying why, when there is
     * no such block.
     */
    static Block eagerBlock(Path onnx, PrintStream log) {
        Path folder = onnx.toAbsolutePath().getParent();
        String zoo = folder == null ? null : ZOO.get(folder.getFileName().toString());
        Path weights = folder == null ? null : folder.resolve("weights.safetensors");
        if (zoo == null || !java.nio.file.Files.isRegularFile(weights)) {
            log.printf("(no eager mode: %s is not one of the reference models %s with weights.safetensors beside it)%n", onnx, ZOO.keySet());
            return null;
        }
        return ModelZoo.get(zoo).block().loadParameters(Safetensors.read(weights));
    }

    /** One worker's inputs, outputs and calls. */
    private static final class Lane implements AutoCloseable {
        final Executor executor;
        /** A second executor reading its input straight from a direct buffer (zero copy: Spark's Arrow path). */
        final Executor bound;
        final ByteBuffer boundInput;
        final OnnxTensor inTensor;
        final OnnxTensor outTensor;
        final Gemms gemms;
        final Gemms dnnlGemms;
        final float[] input;
        final float[] kilnOut;
        final long[] batchShape;

        Lane(OrtEnvironment env, CompiledModel model, long[] inShape, long[] outShape, boolean seedMlp, int batch, int seed) throws OrtException {
            input = SeedBenchmark.randomInput(batch * (int) rowElements(inShape), seed);
            kilnOut = new float[(int) (batch * rowElements(outShape))];
            batchShape = withBatch(inShape, batch);
            FloatBuffer ortIn = ByteBuffer.allocateDirect(input.length * 4).order(ByteOrder.nativeOrder()).asFloatBuffer().put(input);
            ortIn.rewind();
            FloatBuffer ortOut = ByteBuffer.allocateDirect(kilnOut.length * 4).order(ByteOrder.nativeOrder()).asFloatBuffer();
            executor = model.newExecutor(batch);
            boundInput = ByteBuffer.allocateDirect(input.length * 4).order(ByteOrder.LITTLE_ENDIAN);
            boundInput.asFloatBuffer().put(input);
            bound = model.newExecutor(batch);
            bound.bindInput(0, boundInput);
            inTensor = OnnxTensor.createTensor(env, ortIn, withBatch(inShape, batch));
            outTensor = OnnxTensor.createTensor(env, ortOut, withBatch(outShape, batch));
            gemms = seedMlp ? new Gemms(batch, false) : null;
            dnnlGemms = seedMlp ? new Gemms(batch, true) : null;
        }

        @Override
        public void close() {
            executor.close();
            bound.close();
            inTensor.close();
            outTensor.close();
            if (gemms != null) {
                gemms.close();
                dnnlGemms.close();
            }
        }
    }

    private static void runOne(OrtEnvironment env, OrtSession session, CompiledModel model, Block eager, String inName, String outName,
                               long[] inShape, long[] outShape, boolean seedMlp, int batch, int threads, int n, int repetitions,
                               List<SeedBenchmark.Result> results, PrintStream log) throws Exception {
        List<Lane> lanes = new ArrayList<>();
        java.util.concurrent.ExecutorService pool = threads > 1 ? java.util.concurrent.Executors.newFixedThreadPool(threads) : null;
        try {
            List<String> modes = new ArrayList<>(List.of("compiled", "compiled-bound", "onnxruntime"));
            if (seedMlp) {
                modes.addAll(List.of("ceiling", "ceiling-onednn"));
            }
            if (eager != null) {
                modes.add("eager");
            }
            List<List<Call>> contenders = new ArrayList<>();
            int[] counts = new int[modes.size()];
            for (int m = 0; m < modes.size(); m++) {
                contenders.add(new ArrayList<>());
                // Eager runs op by op on ND4J, tens of times slower: a quarter of the calls keeps its share of the run small.
                counts[m] = modes.get(m).equals("eager") ? Math.max(3, n / 4) : n;
            }
            for (int t = 0; t < threads; t++) {
                Lane lane = new Lane(env, model, inShape, outShape, seedMlp, batch, 42 + t);
                lanes.add(lane);
                contenders.get(0).add(() -> {
                    lane.executor.setInput(0, lane.input, 0, batch);
                    lane.executor.run(batch);
                    lane.executor.getOutput(0, lane.kilnOut, 0);
                });
                contenders.get(1).add(() -> {
                    lane.bound.run(batch);
                    lane.bound.getOutput(0, lane.kilnOut, 0);
                });
                contenders.get(2).add(() -> {
                    try (OrtSession.Result ignored = session.run(Map.of(inName, lane.inTensor), Map.of(outName, lane.outTensor))) {
                        // Outputs land in the pinned tensor.
                    }
                });
                if (seedMlp) {
                    contenders.get(3).add(lane.gemms::run);
                    contenders.get(4).add(lane.dnnlGemms::run);
                }
                if (eager != null) {
                    float[] eagerOut = new float[lane.kilnOut.length];
                    contenders.get(modes.indexOf("eager")).add(() -> {
                        float[] y = eager.forward(Tensor.of(TensorData.ofFloats(lane.batchShape, lane.input))).toFloatArray();
                        System.arraycopy(y, 0, eagerOut, 0, eagerOut.length);
                    });
                    contenders.get(2).get(t).call();
                    contenders.get(modes.indexOf("eager")).get(t).call();
                    checkEqual("Kiln eager", eagerOut, lane.outTensor.getFloatBuffer(), batch, 1e-5);
                }
                contenders.get(2).get(t).call();
                contenders.get(0).get(t).call();
                checkEqual("Kiln compiled", lane.kilnOut, lane.outTensor.getFloatBuffer(), batch, 1e-5);
                java.util.Arrays.fill(lane.kilnOut, Float.NaN);
                contenders.get(1).get(t).call();
                checkEqual("Kiln compiled-bound", lane.kilnOut, lane.outTensor.getFloatBuffer(), batch, 1e-5);
            }
            int warmup = Math.max(20_000 / batch, 2 * n);
            for (int m = 0; m < contenders.size(); m++) {
                time(contenders.get(m), modes.get(m).equals("eager") ? counts[m] : warmup, pool);
            }
            double[][] seconds = new double[contenders.size()][repetitions];
            for (int r = 0; r < repetitions; r++) {
                for (int m = 0; m < contenders.size(); m++) {
                    seconds[m][r] = time(contenders.get(m), counts[m], pool);
                }
            }
            StringBuilder line = new StringBuilder(String.format("batch %5d  threads %d", batch, threads));
            for (int m = 0; m < contenders.size(); m++) {
                SeedBenchmark.Result result = summarize(modes.get(m), batch, threads, counts[m], seconds[m]);
                results.add(result);
                line.append(String.format("  %s %.1f us/call %,.0f rows/s", modes.get(m), result.usPerCall(), result.rowsPerSecond()));
            }
            log.println(line);
        } finally {
            if (pool != null) {
                pool.shutdownNow();
            }
            for (Lane lane : lanes) {
                lane.close();
            }
        }
    }

    /** Runs each lane's call {@code n} times, the lanes at once on {@code pool} (inline when there is one); wall seconds. */
    private static double time(List<Call> lanes, int n, java.util.concurrent.ExecutorService pool) throws Exception {
        if (pool == null) {
            return time(lanes.get(0), n);
        }
        List<java.util.concurrent.Callable<Void>> work = new ArrayList<>();
        for (Call c : lanes) {
            work.add(() -> {
                for (int i = 0; i < n; i++) {
                    c.call();
                }
                return null;
            });
        }
        long start = System.nanoTime();
        for (java.util.concurrent.Future<Void> f : pool.invokeAll(work)) {
            f.get();
        }
        return (System.nanoTime() - start) / 1e9;
    }

    /** Elements per row: the product of the non-batch dimensions. */
    private static long rowElements(long[] shape) {
        long n = 1;
        for (int i = 1; i < shape.length; i++) {
            n *= shape[i];
        }
        return n;
    }

    private static long[] withBatch(long[] shape, int batch) {
        long[] s = shape.clone();
        s[0] = batch;
        return s;
    }

    /** The shape with the leading batch dimension set to {@code batch}; the rest must be concrete. */
    private static long[] withBatch(dev.kiln.engine.tensor.Shape shape, int batch) {
        long[] s = new long[shape.rank()];
        s[0] = batch;
        for (int i = 1; i < s.length; i++) {
            s[i] = shape.dim(i).size();
        }
        return s;
    }

    private static SeedBenchmark.Result summarize(String mode, int batch, int threads, int n, double[] seconds) {
        double[] us = new double[seconds.length];
        double[] rowsPerS = new double[seconds.length];
        for (int i = 0; i < seconds.length; i++) {
            us[i] = seconds[i] * 1e6 / n;
            rowsPerS[i] = (double) threads * n * batch / seconds[i];
        }
        Arrays.sort(us);
        Arrays.sort(rowsPerS);
        return new SeedBenchmark.Result(mode, batch, threads, SeedBenchmark.median(us), us[0], us[us.length - 1],
                SeedBenchmark.median(rowsPerS), rowsPerS[0], rowsPerS[rowsPerS.length - 1], n, seconds.length);
    }

    private static double time(Call call, int n) throws OrtException {
        long start = System.nanoTime();
        for (int i = 0; i < n; i++) {
            call.call();
        }
        return (System.nanoTime() - start) / 1e9;
    }

    private static void checkEqual(String what, float[] kiln, FloatBuffer ort, int batch, double rtol) {
        for (int i = 0; i < kiln.length; i++) {
            float o = ort.get(i);
            if (Math.abs(kiln[i] - o) > 1e-6 + rtol * Math.abs(o)) {
                throw KilnException.of(ErrorCode.INVALID_ARGUMENT, "At batch %d, %s and ONNX Runtime differ at element %d: %s vs %s", batch, what, i, kiln[i], o);
            }
        }
    }

    /** The seed MLP's three GEMMs (512->256->128->2) alone through OpenBLAS or oneDNN: the floor under any engine's time. */
    private static final class Gemms implements AutoCloseable {
        private final int batch;
        private final boolean onednn;
        private final FloatPointer x;
        private final FloatPointer h1;
        private final FloatPointer h2;
        private final FloatPointer y;
        private final FloatPointer w1;
        private final FloatPointer w2;
        private final FloatPointer w3;

        Gemms(int batch, boolean onednn) {
            this.onednn = onednn;
            this.batch = batch;
            x = filled(batch * 512L);
            h1 = new FloatPointer(batch * 256L);
            h2 = new FloatPointer(batch * 128L);
            y = new FloatPointer(batch * 2L);
            w1 = filled(256 * 512L);
            w2 = filled(128 * 256L);
            w3 = filled(2 * 128L);
        }

        private static FloatPointer filled(long n) {
            FloatPointer p = new FloatPointer(n);
            FloatBuffer b = p.asBuffer();
            for (int i = 0; i < n; i++) {
                b.put(i, (float) Math.sin(i));
            }
            return p;
        }

        void run() {
            gemm(x, w1, h1, 512, 256);
            gemm(h1, w2, h2, 256, 128);
            gemm(h2, w3, y, 128, 2);
        }

        private void gemm(FloatPointer a, FloatPointer w, FloatPointer c, int k, int n) {
            if (onednn) {
                int status = org.bytedeco.dnnl.global.dnnl.dnnl_sgemm((byte) 'N', (byte) 'T', batch, n, k, 1f, a, k, w, k, 0f, c, n);
                if (status != 0) {
                    throw new IllegalStateException("dnnl_sgemm failed: status " + status);
                }
                return;
            }
            openblas_nolapack.cblas_sgemm(openblas_nolapack.CblasRowMajor, openblas_nolapack.CblasNoTrans, openblas_nolapack.CblasTrans,
                    batch, n, k, 1f, a, k, w, k, 0f, c, n);
        }

        @Override
        public void close() {
            for (FloatPointer p : List.of(x, h1, h2, y, w1, w2, w3)) {
                p.close();
            }
        }
    }
}
