package dev.kiln.jobs.bench.jmh;

import dev.kiln.engine.Kiln;
import dev.kiln.engine.backend.cpu.CpuBackend;
import dev.kiln.engine.exec.CompiledModel;
import dev.kiln.engine.exec.Executor;
import dev.kiln.engine.ir.Attributes;
import dev.kiln.engine.ir.Graph;
import dev.kiln.engine.ir.GraphBuilder;
import dev.kiln.engine.ir.TensorType;
import dev.kiln.engine.ir.Value;
import dev.kiln.engine.ops.OpRegistry;
import dev.kiln.engine.pass.PassPipeline;
import dev.kiln.engine.tensor.Shape;
import dev.kiln.engine.tensor.TensorData;
import dev.kiln.engine.zoo.ModelZoo;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;

/**
 * The CPU backend's kernels one at a time, each as a one-node compiled graph on the shapes of the reference models
 * (the seed MLP's first dense layer, the CNN's second convolution and its pooling, the encoder's attention softmax and
 * GELU), plus the whole seed MLP at batch 1 and 1024, and the Spark connector's per-row batch copy. Run with
 * {@code bin/kiln bench --jmh [REGEX]}; the forked JVMs inherit bin/kiln's flags and environment (one BLAS thread, the Vector API module, and the OpenBLAS core type where
 * bin/kiln sets it: on AVX-512 CPUs).
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(1)
public class KernelBenchmarks {
    /** A compiled graph with its executor and random inputs, ready to run. */
    abstract static class Compiled {
        CompiledModel model;
        Executor executor;
        long batch;

        void bind(Graph graph, long rows) {
            model = Kiln.compile(graph, new PassPipeline(List.of(), false), CpuBackend.INSTANCE);
            prepare(rows);
        }

        void prepare(long rows) {
            batch = rows;
            executor = model.newExecutor(rows);
            Random random = new Random(1);
            for (int i = 0; i < model.signature().inputs().size(); i++) {
                Shape shape = model.signature().inputs().get(i).shape();
                long perRow = 1;
                for (int d = 1; d < shape.rank(); d++) {
                    perRow *= shape.dim(d).size();
                }
                float[] x = new float[(int) (rows * perRow)];
                for (int j = 0; j < x.length; j++) {
                    x[j] = (float) random.nextGaussian();
                }
                executor.setInput(i, x, 0, (int) rows);
            }
        }

        @TearDown(Level.Trial)
        public void close() {
            executor.close();
            model.close();
        }
    }

    private static Graph oneNode(String op, Attributes attributes, Shape input, TensorData... weights) {
        GraphBuilder b = new GraphBuilder();
        Value x = b.input("x", TensorType.float32(input));
        Value[] in = new Value[1 + weights.length];
        in[0] = x;
        for (int i = 0; i < weights.length; i++) {
            in[i + 1] = b.parameter("w" + i, weights[i]);
        }
        b.output("y", b.add1(op, attributes, "k", in));
        return b.build();
    }

    private static TensorData random(long... shape) {
        Random random = new Random(2);
        float[] v = new float[(int) TensorData.elementCount(shape)];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) (random.nextGaussian() * 0.05);
        }
        return TensorData.ofFloats(shape, v);
    }

    /**
     * What the Spark connector does per row while it builds a batch: 512 floats copied from a row's bytes on the heap
     * (at the odd offset an array body has in Spark's rows) into an off-heap batch of 512 rows, screened for NaN and
     * infinities in the same pass; {@code bare} copies without the screen, the floor of the fused copy.
     */
    @State(Scope.Thread)
    public static class RowCopy {
        @Param({"checked", "bare"})
        public String mode;
        final byte[][] rows = new byte[64][];
        java.nio.ByteBuffer batch;

        @Setup(Level.Trial)
        public void setup() {
            Random random = new Random(3);
            for (int r = 0; r < rows.length; r++) {
                rows[r] = new byte[88 + 4 * 512];
                java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(rows[r]).order(java.nio.ByteOrder.LITTLE_ENDIAN);
                for (int i = 0; i < 512; i++) {
                    b.putFloat(88 + 4 * i, (float) random.nextGaussian());
                }
            }
            batch = java.nio.ByteBuffer.allocateDirect(512 * 512 * 4).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        }
    }

    @State(Scope.Thread)
    public static class SeedMlp extends Compiled {
        @Param({"1", "1024"})
        public int rows;

        @Setup(Level.Trial)
        public void setup() {
            ModelZoo.Entry entry = ModelZoo.get("seed-mlp");
            entry.block().setSeed(7);
            model = Kiln.compile(entry.block(), entry.signature());
            prepare(rows);
        }
    }

    @State(Scope.Thread)
    public static class Dense512x256Relu extends Compiled {
        @Param({"1", "1024"})
        public int rows;

        @Setup(Level.Trial)
        public void setup() {
            bind(oneNode(OpRegistry.DENSE, Attributes.of("activation", "relu"), Shape.batched(512), random(256, 512), random(256)), rows);
        }
    }

    @State(Scope.Thread)
    public static class CnnConv2 extends Compiled {
        @Setup(Level.Trial)
        public void setup() {
            bind(oneNode(OpRegistry.CONV2D, Attributes.of("pads", new long[] {1, 1, 1, 1}, "activation", "relu"), Shape.batched(8, 14, 14),
                    random(16, 8, 3, 3), random(16)), 256);
        }
    }

    @State(Scope.Thread)
    public static class CnnMaxPool extends Compiled {
        @Setup(Level.Trial)
        public void setup() {
            bind(oneNode(OpRegistry.MAX_POOL2D, Attributes.of("kernel", new long[] {2, 2}, "strides", new long[] {2, 2}), Shape.batched(8, 28, 28)), 256);
        }
    }

    /**
     * The reference CNN's trunk (conv 1->8 pad 1 + relu, 2x2 max pool, conv 8->16 + relu, global average pool) at batch
     * 256, as one oneDNN chain or node by node ({@code kiln.onednn.noChain}, read when the executor is built).
     */
    @State(Scope.Thread)
    public static class CnnTrunk extends Compiled {
        @Param({"chain", "nodes"})
        public String mode;

        @Setup(Level.Trial)
        public void setup() {
            GraphBuilder b = new GraphBuilder();
            Value x = b.input("image", TensorType.float32(Shape.batched(1, 28, 28)));
            Value h = b.add1(OpRegistry.CONV2D, Attributes.of("pads", new long[] {1, 1, 1, 1}, "activation", "relu"), "conv1",
                    x, b.parameter("w1", random(8, 1, 3, 3)), b.parameter("b1", random(8)));
            h = b.add1(OpRegistry.MAX_POOL2D, Attributes.of("kernel", new long[] {2, 2}, "strides", new long[] {2, 2}), "pool", h);
            h = b.add1(OpRegistry.CONV2D, Attributes.of("activation", "relu"), "conv2", h, b.parameter("w2", random(16, 8, 3, 3)), b.parameter("b2", random(16)));
            b.output("y", b.add1(OpRegistry.REDUCE_MEAN, Attributes.of("axes", new long[] {2, 3}), "gap", h));
            String before = System.getProperty("kiln.onednn.noChain");
            System.setProperty("kiln.onednn.noChain", Boolean.toString(mode.equals("nodes")));
            try {
                bind(b.build(), 256);
            } finally {
                if (before == null) {
                    System.clearProperty("kiln.onednn.noChain");
                } else {
                    System.setProperty("kiln.onednn.noChain", before);
                }
            }
        }
    }

    @State(Scope.Thread)
    public static class AttentionSoftmax extends Compiled {
        @Setup(Level.Trial)
        public void setup() {
            bind(oneNode(OpRegistry.SOFTMAX, Attributes.of("axis", -1L), Shape.batched(4, 16, 16)), 64);
        }
    }

    @State(Scope.Thread)
    public static class Gelu extends Compiled {
        @Setup(Level.Trial)
        public void setup() {
            bind(oneNode("gelu", Attributes.EMPTY, Shape.batched(16, 128)), 64);
        }
    }

    /** One batch of 512 rows: microseconds per call / 512 = per-row cost. */
    @Benchmark
    public int rowCopyBatch512(RowCopy s) {
        int bad = 0;
        boolean checked = s.mode.equals("checked");
        for (int r = 0; r < 512; r++) {
            byte[] row = s.rows[r & 63];
            if (checked) {
                bad += dev.kiln.engine.backend.cpu.FiniteCheck.copyChecked(row, 88, s.batch, r * 2048, 512);
            } else {
                s.batch.put(r * 2048, row, 88, 2048);
            }
        }
        return bad;
    }

    @Benchmark
    public void seedMlp(SeedMlp s) {
        s.executor.run(s.batch);
    }

    @Benchmark
    public void dense512x256Relu(Dense512x256Relu s) {
        s.executor.run(s.batch);
    }

    @Benchmark
    public void cnnConv2Batch256(CnnConv2 s) {
        s.executor.run(s.batch);
    }

    @Benchmark
    public void cnnMaxPoolBatch256(CnnMaxPool s) {
        s.executor.run(s.batch);
    }

    @Benchmark
    public void cnnTrunkBatch256(CnnTrunk s) {
        s.executor.run(s.batch);
    }

    @Benchmark
    public void attentionSoftmaxBatch64(AttentionSoftmax s) {
        s.executor.run(s.batch);
    }

    @Benchmark
    public void geluBatch64(Gelu s) {
        s.executor.run(s.batch);
    }
}
