package dev.kiln.engine.backend.cuda;

import dev.kiln.engine.backend.SharedStatics;
import dev.kiln.engine.exec.CompiledModel;
import dev.kiln.engine.exec.Executor;
import dev.kiln.engine.ir.Graph;
import dev.kiln.engine.ir.Node;
import dev.kiln.engine.ir.Value;
import dev.kiln.engine.plan.MemoryPlanner;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.IdentityHashMap;
import java.util.Map;

/**
 * A model's weights on one GPU, uploaded once and shared by every executor (and so every Spark task thread) of the
 * JVM. Checks at load that every op has a GPU kernel and that inputs and outputs are batch-first. Owns the device
 * blocks of the weights; {@link #close} frees them once the last executor has closed.
 */
final class CudaLoadedModel extends SharedStatics {
    private final CompiledModel model;
    private final CudaApi api;
    private final Map<Value, Long> statics = new IdentityHashMap<>();
    private long bytes;

    CudaLoadedModel(CompiledModel model, CudaApi api) {
        this.model = model;
        this.api = api;
        Graph graph = model.graph();
        check(graph);
        try {
            for (Node node : graph.nodes()) {
                if (CudaLowering.isStatic(node)) {
                    FloatBuffer values = graph.constantData(node.output()).floats();
                    long size = Math.max(4, 4L * values.remaining());
                    ByteBuffer staging = ByteBuffer.allocateDirect((int) size).order(ByteOrder.LITTLE_ENDIAN);
                    staging.asFloatBuffer().put(values.duplicate());
                    long address = api.malloc(size);
                    statics.put(node.output(), address);
                    bytes += size;
                    api.copyToDevice(address, staging, 0, size, 0);
                }
            }
            api.synchronize(0);
        } catch (RuntimeException e) {
            freeStatics();
            throw e;
        }
    }

    /** Refuses graphs the backend cannot run, before any device memory is used. */
    static void check(Graph graph) {
        for (Value v : graph.inputs()) {
            requireBatchFirst(v, "input");
        }
        for (Value v : graph.outputs()) {
            requireBatchFirst(v, "output");
        }
        Map<Value, Long> fake = new IdentityHashMap<>();
        for (Node node : graph.nodes()) {
            if (CudaLowering.isStatic(node)) {
                fake.put(node.output(), 0L);
            }
        }
        CudaLowering.lower(graph, MemoryPlanner.plan(graph, 1), 0, fake, DryRun.INSTANCE);
    }

    private static void requireBatchFirst(Value v, String what) {
        if (v.type().shape().symbolicAxis() != 0) {
            throw new UnsupportedOperationException("The cuda backend streams rows of the batch axis and needs every graph " + what
                    + " batch-first; '" + v.name() + "' is " + v.type());
        }
    }

    CompiledModel model() {
        return model;
    }

    CudaApi api() {
        return api;
    }

    Map<Value, Long> statics() {
        return statics;
    }

    @Override
    protected Executor createExecutor(long capacity) {
        return new CudaExecutor(this, capacity);
    }

    @Override
    public long staticBytes() {
        return bytes;
    }

    @Override
    protected synchronized void freeStatics() {
        for (long address : statics.values()) {
            api.free(address);
        }
        statics.clear();
    }

    /** Accepts launches and does nothing: the load-time check of {@link CudaLowering} without a device. */
    private static final class DryRun implements CudaApi {
        static final DryRun INSTANCE = new DryRun();
        private static final Launch NO_OP = new Launch() {
            @Override
            public void set(int index, long value) {
            }

            @Override
            public void setFloat(int index, float value) {
            }

            @Override
            public void launch(long threads, long stream) {
                throw new IllegalStateException("dry run");
            }
        };

        @Override
        public String describe() {
            return "dry run";
        }

        @Override
        public long malloc(long bytes) {
            throw new IllegalStateException("dry run");
        }

        @Override
        public void free(long address) {
        }

        @Override
        public ByteBuffer mallocHost(long bytes) {
            throw new IllegalStateException("dry run");
        }

        @Override
        public void freeHost(ByteBuffer buffer) {
        }

        @Override
        public long createStream() {
            throw new IllegalStateException("dry run");
        }

        @Override
        public void destroyStream(long stream) {
        }

        @Override
        public void copyToDevice(long dst, ByteBuffer src, long srcOffset, long bytes, long stream) {
            throw new IllegalStateException("dry run");
        }

        @Override
        public void copyToHost(ByteBuffer dst, long dstOffset, long src, long bytes, long stream) {
            throw new IllegalStateException("dry run");
        }

        @Override
        public void synchronize(long stream) {
        }

        @Override
        public Launch prepare(String name, ArgKind... args) {
            return NO_OP;
        }

        @Override
        public void gemm(boolean transB, boolean relu, long a, long b, long bias, long c, long m, long n, long k, long count, long strideA,
                         long strideB, long strideC, long stream) {
            throw new IllegalStateException("dry run");
        }

        @Override
        public void close() {
        }
    }
}
