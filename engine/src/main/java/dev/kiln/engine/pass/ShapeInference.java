package dev.kiln.engine.pass;

import dev.kiln.engine.ir.Graph;
import dev.kiln.engine.ir.GraphBuilder;
import dev.kiln.engine.ir.Node;
import dev.kiln.engine.ir.TensorType;
import dev.kiln.engine.ir.Value;
import dev.kiln.engine.ops.OpRegistry;

import java.util.ArrayList;
import java.util.List;

/**
 * Re-infers every node's output types from its inputs through the op registry, so graphs built by importers or edited
 * by hand carry exact (possibly symbolic) shapes and dtypes; an inconsistent node fails naming itself. Returns the
 * same graph when every type already agrees.
 */
public final class ShapeInference implements Pass {
    @Override
    public String name() {
        return "shape-inference";
    }

    @Override
    public Graph apply(Graph graph) {
        GraphBuilder b = GraphBuilder.rewriting(graph);
        boolean changed = false;
        for (Node node : graph.nodes()) {
            if (node.op().equals(OpRegistry.PARAMETER)) {
                b.keep(node);
                continue;
            }
            List<Value> inputs = b.map(node.inputs());
            List<TensorType> inTypes = new ArrayList<>();
            for (Value v : inputs) {
                inTypes.add(v.type());
            }
            List<TensorType> inferred = OpRegistry.get(node.op()).inferTypes(inTypes, node.attributes());
            boolean same = inferred.size() == node.outputs().size();
            for (int i = 0; same && i < inferred.size(); i++) {
                same = inferred.get(i).equals(node.outputs().get(i).type());
            }
            if (same) {
                b.keep(node);
            } else {
                changed = true;
                List<Value> outs = b.add(node.op(), node.attributes(), inputs, node.name());
                for (int i = 0; i < outs.size(); i++) {
                    b.replace(node.outputs().get(i), outs.get(i));
                }
            }
        }
        return changed ? b.outputsOf(graph).build() : graph;
    }
}
