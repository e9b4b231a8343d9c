package dev.kiln.engine.backend.cpu;

import dev.kiln.engine.backend.Backend;
import dev.kiln.engine.exec.CompiledModel;
import dev.kiln.engine.exec.Executor;
import dev.kiln.engine.ir.Graph;
import dev.kiln.engine.ir.Node;
import dev.kiln.engine.ir.Value;
import dev.kiln.engine.ops.OpRegistry;
import dev.kiln.engine.tensor.TensorData;
import org.bytedeco.javacpp.FloatPointer;

import java.nio.FloatBuffer;
import java.util.IdentityHashMap;
import java.util.Map;

/**
 * A model's constants and parameters in one off-heap block, written once and then only read, by every executor
 * thread. Owns that block; {@link #close} frees it (executors must be closed first).
 */
final class CpuLoadedModel implements Backend.LoadedModel {
    private static final int ALIGN = 16;

    private final CompiledModel model;
    private final FloatPointer block;
    private final FloatBuffer view;
    private final Map<Value, Integer> offsets = new IdentityHashMap<>();

    CpuLoadedModel(CompiledModel model) {
        this.model = model;
        Graph graph = model.graph();
        long total = 0;
        for (Node node : graph.nodes()) {
            if (isSource(node)) {
                offsets.put(node.output(), Math.toIntExact(total));
                total += (graph.constantData(node.output()).elementCount() + ALIGN - 1) / ALIGN * ALIGN;
            }
        }
        this.block = new FloatPointer(Math.max(ALIGN, total));
        this.view = block.asBuffer();
        for (Map.Entry<Value, Integer> e : offsets.entrySet()) {
            TensorData data = graph.constantData(e.getKey());
            FloatBuffer values = data.floats();
            // Off-heap to off-heap: a memory-mapped weight file never passes through the Java heap.
            view.put(e.getValue(), values, 0, values.remaining());
        }
    }

    static boolean isSource(Node node) {
        return node.op().equals(OpRegistry.CONSTANT) || node.op().equals(OpRegistry.PARAMETER);
    }

    CompiledModel model() {
        return model;
    }

    FloatBuffer view() {
        return view;
    }

    FloatPointer block() {
        return block;
    }

    int offset(Value staticValue) {
        return offsets.get(staticValue);
    }

    @Override
    public Executor newExecutor(long capacity) {
        return new CpuExecutor(this, capacity);
    }

    @Override
    public long staticBytes() {
        return block.capacity() * 4;
    }

    @Override
    public void close() {
        block.close();
    }
}
