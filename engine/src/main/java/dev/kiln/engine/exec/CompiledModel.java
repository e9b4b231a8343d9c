package dev.kiln.engine.exec;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;
import dev.kiln.engine.backend.Backend;
import dev.kiln.engine.ir.Graph;
import dev.kiln.engine.ir.GraphPrinter;
import dev.kiln.engine.ir.Signature;
import dev.kiln.engine.ir.Value;
import dev.kiln.engine.plan.MemoryPlan;
import dev.kiln.engine.plan.MemoryPlanner;
import dev.kiln.engine.tensor.DType;
import dev.kiln.engine.tensor.Shape;
import dev.kiln.engine.tensor.TensorData;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentLinkedDeque;

import static java.util.Objects.requireNonNull;

/**
 * An optimized graph with its parameters and signature, bound to a backend. Thread-safe and shared: its static data
 * (weights) are placed once on first use and read by every executor. {@link #newExecutor} gives a caller-owned
 * executor for a hot loop; {@link #run} is the convenient (allocating) call, backed by a pool of executors. Closing
 * the model frees its weights and pooled executors.
 */
public final class CompiledModel implements AutoCloseable {
    private final Graph graph;
    private final Signature signature;
    private final List<String> passes;
    private final Backend backend;
    private final ConcurrentLinkedDeque<Executor> pool = new ConcurrentLinkedDeque<>();
    private volatile Backend.LoadedModel loaded;
    private volatile boolean closed;

    public CompiledModel(Graph graph, List<String> passes, Backend backend) {
        this.graph = requireNonNull(graph, "graph is null");
        this.signature = Signature.of(graph);
        this.passes = List.copyOf(passes);
        this.backend = requireNonNull(backend, "backend is null");
    }

    public Graph graph() {
        return graph;
    }

    public Signature signature() {
        return signature;
    }

    /** The passes that produced this graph, in order. */
    public List<String> passes() {
        return passes;
    }

    public Backend backend() {
        return backend;
    }

    /** The memory plan executors use at {@code batch} rows. */
    public MemoryPlan memoryPlan(long batch) {
        return MemoryPlanner.plan(graph, batch);
    }

    private Backend.LoadedModel loaded() {
        Backend.LoadedModel l = loaded;
        if (l == null) {
            synchronized (this) {
                if (closed) {
                    throw KilnException.of(ErrorCode.INVALID_ARGUMENT, "The compiled model is closed");
                }
                l = loaded;
                if (l == null) {
                    l = backend.load(this);
                    loaded = l;
                }
            }
        }
        return l;
    }

    /** A new executor with buffers for {@code capacity} rows. The caller closes it. */
    public Executor newExecutor(long capacity) {
        return loaded().newExecutor(capacity);
    }

    /** Off-heap bytes of this model's static data (0 before first use). */
    public long staticBytes() {
        Backend.LoadedModel l = loaded;
        return l == null ? 0 : l.staticBytes();
    }

    /**
     * Runs the model on named inputs whose first dimension is the batch; returns outputs by name, in signature order.
     * Inputs are checked against the signature: a missing, unexpected or mis-shaped input fails naming it.
     */
    public Map<String, TensorData> run(Map<String, TensorData> inputs) {
        long batch = bindBatch(inputs);
        Executor executor = pool.pollFirst();
        if (executor == null) {
            executor = newExecutor(Math.max(1, batch));
        }
        // From here the executor is ours: released (pooled or closed) in the finally below.
        try {
            List<Value> graphInputs = graph.inputs();
            for (int i = 0; i < graphInputs.size(); i++) {
                TensorData data = inputs.get(graphInputs.get(i).name());
                executor.setInput(i, data.toFloatArray(), 0, (int) batch);
            }
            executor.run(batch);
            Map<String, TensorData> out = new LinkedHashMap<>();
            for (int i = 0; i < graph.outputs().size(); i++) {
                float[] values = new float[executor.outputElements(i)];
                executor.getOutput(i, values, 0);
                long[] shape = graph.outputs().get(i).type().shape().resolve(batch);
                ByteBuffer bytes = ByteBuffer.allocate(values.length * 4).order(ByteOrder.LITTLE_ENDIAN);
                bytes.asFloatBuffer().put(values);
                out.put(graph.outputNames().get(i), new TensorData(DType.FLOAT32, shape, bytes));
            }
            return out;
        } finally {
            release(executor);
        }
    }

    /** Returns a pooled executor, or closes it when the model closed meanwhile (checked under the model's lock). */
    private void release(Executor executor) {
        synchronized (this) {
            if (!closed) {
                pool.addFirst(executor);
                return;
            }
        }
        executor.close();
    }

    /** Checks inputs against the signature and returns the batch they agree on. */
    public long bindBatch(Map<String, TensorData> inputs) {
        for (String name : inputs.keySet()) {
            if (graph.inputs().stream().noneMatch(v -> v.name().equals(name))) {
                throw KilnException.of(ErrorCode.BAD_INPUT, "Unexpected input '%s'; the model's inputs are %s", name, signature.inputs());
            }
        }
        long batch = -1;
        String batchFrom = null;
        for (Value in : graph.inputs()) {
            TensorData data = inputs.get(in.name());
            if (data == null) {
                throw KilnException.of(ErrorCode.BAD_INPUT, "Missing input '%s' %s", in.name(), in.type());
            }
            if (data.dtype() != in.type().dtype()) {
                throw KilnException.of(ErrorCode.BAD_INPUT, "Input '%s' expects %s but got %s", in.name(), in.type(), data);
            }
            Shape expected = in.type().shape();
            long b = expected.bind(data.shape());
            if (b < 0) {
                throw KilnException.of(ErrorCode.BAD_INPUT, "Input '%s' expects shape %s but got %s", in.name(), expected, Arrays.toString(data.shape()));
            }
            if (expected.symbolicAxis() >= 0) {
                if (batch >= 0 && b != batch) {
                    throw KilnException.of(ErrorCode.BAD_INPUT, "Inputs disagree on the batch: '%s' has %d rows, '%s' has %d", batchFrom, batch, in.name(), b);
                }
                batch = b;
                batchFrom = in.name();
            }
        }
        return batch < 0 ? 1 : batch;
    }

    @Override
    public void close() {
        synchronized (this) {
            closed = true;
        }
        Executor e;
        while ((e = pool.pollFirst()) != null) {
            e.close();
        }
        Backend.LoadedModel l;
        synchronized (this) {
            l = loaded;
            loaded = null;
        }
        if (l != null) {
            // Frees the weights once every executor (pooled ones above, callers' own ones later) is closed.
            l.close();
        }
    }

    @Override
    public String toString() {
        return GraphPrinter.print(graph);
    }
}
