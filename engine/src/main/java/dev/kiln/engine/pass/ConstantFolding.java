package dev.kiln.engine.pass;

import dev.kiln.engine.backend.Kernel;
import dev.kiln.engine.backend.Slot;
import dev.kiln.engine.ir.Graph;
import dev.kiln.engine.ir.GraphBuilder;
import dev.kiln.engine.ir.Node;
import dev.kiln.engine.ir.Value;
import dev.kiln.engine.ops.OpRegistry;
import dev.kiln.engine.tensor.DType;
import dev.kiln.engine.tensor.TensorData;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * Evaluates, at compile time, every node whose inputs are all constants or parameters and whose outputs have concrete
 * shapes, using the op's reference kernel, and replaces it with constants: the seed's {@code (1 + 2) + (3 + 4)}
 * becomes {@code 10}. Nodes above {@link #MAX_ELEMENTS} output elements are left alone to bound compile-time memory.
 */
public final class ConstantFolding implements Pass {
    static final long MAX_ELEMENTS = 64L << 20;

    @Override
    public String name() {
        return "constant-folding";
    }

    @Override
    public Graph apply(Graph graph) {
        GraphBuilder b = GraphBuilder.rewriting(graph);
        Map<Value, TensorData> known = new IdentityHashMap<>();
        boolean changed = false;
        for (Node node : graph.nodes()) {
            if (node.op().equals(OpRegistry.CONSTANT) || node.op().equals(OpRegistry.PARAMETER)) {
                known.put(node.output(), graph.constantData(node.output()));
                b.keep(node);
                continue;
            }
            List<Value> inputs = b.map(node.inputs());
            TensorData[] data = new TensorData[inputs.size()];
            boolean foldable = true;
            for (int i = 0; i < inputs.size() && foldable; i++) {
                data[i] = known.get(inputs.get(i));
                foldable = data[i] != null && data[i].dtype() == DType.FLOAT32;
            }
            for (Value out : node.outputs()) {
                foldable &= out.type().shape().isConcrete() && out.type().shape().elementCount() <= MAX_ELEMENTS;
            }
            if (!foldable) {
                b.keep(node);
                continue;
            }
            TensorData[] results = evaluate(node, inputs, data);
            for (int i = 0; i < results.length; i++) {
                Value folded = b.constant(results[i]);
                known.put(folded, results[i]);
                b.replace(node.outputs().get(i), folded);
            }
            changed = true;
        }
        return changed ? b.outputsOf(graph).build() : graph;
    }

    /** Runs {@code node}'s reference kernel on heap buffers. */
    static TensorData[] evaluate(Node node, List<Value> inputs, TensorData[] data) {
        Slot[] in = new Slot[data.length];
        for (int i = 0; i < data.length; i++) {
            in[i] = new Slot(data[i].floats(), 0, inputs.get(i).type());
        }
        Slot[] out = new Slot[node.outputs().size()];
        FloatBuffer[] buffers = new FloatBuffer[out.length];
        for (int i = 0; i < out.length; i++) {
            Value v = node.outputs().get(i);
            buffers[i] = FloatBuffer.allocate(Math.toIntExact(v.type().shape().elementCount()));
            out[i] = new Slot(buffers[i], 0, v.type());
        }
        Kernel kernel = OpRegistry.get(node.op()).newKernel(in, out, node.attributes());
        kernel.run(1);
        TensorData[] results = new TensorData[out.length];
        for (int i = 0; i < out.length; i++) {
            ByteBuffer bytes = ByteBuffer.allocate(buffers[i].capacity() * 4).order(ByteOrder.LITTLE_ENDIAN);
            bytes.asFloatBuffer().put(buffers[i].array());
            results[i] = new TensorData(DType.FLOAT32, node.outputs().get(i).type().shape().toLongArray(), bytes);
        }
        return results;
    }

}
