package dev.kiln.engine.backend.cpu;

import dev.kiln.engine.backend.SharedStatics;
import dev.kiln.engine.exec.CompiledModel;
import dev.kiln.engine.exec.Executor;
import dev.kiln.engine.ir.Graph;
import dev.kiln.engine.ir.Node;
import dev.kiln.engine.ir.Value;
import dev.kiln.engine.ops.OpRegistry;
import org.bytedeco.javacpp.FloatPointer;

import java.nio.FloatBuffer;
import java.util.IdentityHashMap;
import java.util.Map;

/**
 * A model's constants and parameters off the heap, written once and then only read, by every executor thread.
 * Owns those blocks; {@link #close} frees them (executors must be closed first).
 */
final class CpuLoadedModel extends SharedStatics {
    private final CompiledModel model;
    private final Map<Value, FloatPointer> blocks = new IdentityHashMap<>();
    private final Map<Value, FloatBuffer> views = new IdentityHashMap<>();
    private long bytes;

    CpuLoadedModel(CompiledModel model) {
        this.model = model;
        Graph graph = model.graph();
        try {
            for (Node node : graph.nodes()) {
                if (isSource(node)) {
                    // One block per tensor: a direct buffer view is limited to 2 GiB, models are not.
                    FloatBuffer values = graph.constantData(node.output()).floats();
                    FloatPointer block = new FloatPointer(Math.max(1, values.remaining()));
                    blocks.put(node.output(), block);
                    FloatBuffer view = block.asBuffer();
                    // Off-heap to off-heap: a memory-mapped weight file never passes through the Java heap.
                    view.put(0, values, 0, values.remaining());
                    views.put(node.output(), view);
                    bytes += block.capacity() * 4;
                }
            }
        } catch (RuntimeException e) {
            freeStatics();
            throw e;
        }
    }

    static boolean isSource(Node node) {
        return node.op().equals(OpRegistry.CONSTANT) || node.op().equals(OpRegistry.PARAMETER);
    }

    CompiledModel model() {
        return model;
    }

    /** The read-only data of a constant or parameter value: its own buffer, starting at index 0. */
    FloatBuffer view(Value staticValue) {
        return views.get(staticValue);
    }

    @Override
    protected Executor createExecutor(long capacity) {
        return new CpuExecutor(this, capacity);
    }

    @Override
    public long staticBytes() {
        return bytes;
    }

    @Override
    protected synchronized void freeStatics() {
        for (FloatPointer block : blocks.values()) {
            block.close();
        }
        blocks.clear();
        views.clear();
    }
}
