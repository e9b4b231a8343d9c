package dev.kiln.engine.trace;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;
import dev.kiln.engine.ir.Attributes;
import dev.kiln.engine.ir.Graph;
import dev.kiln.engine.ir.GraphBuilder;
import dev.kiln.engine.ir.Signature;
import dev.kiln.engine.ir.TensorType;
import dev.kiln.engine.ir.Value;
import dev.kiln.engine.nn.Block;
import dev.kiln.engine.tensor.CallScope;
import dev.kiln.engine.tensor.Tensor;
import dev.kiln.engine.tensor.TensorData;
import dev.kiln.engine.tensor.TensorEngine;

import java.util.ArrayList;
import java.util.List;

/**
 * Runs a block's ordinary Java forward code on {@link SymbolicTensor}s and records every op into a graph. Java side
 * effects in forward run once here and never in the compiled model. Eager tensors that the code captures (created
 * outside, or values computed eagerly) become constants.
 */
public final class Tracer implements TensorEngine {
    private static final ThreadLocal<Tracer> ACTIVE = new ThreadLocal<>();

    private final GraphBuilder builder = new GraphBuilder();

    private Tracer() {
    }

    /** The tracer running on this thread, or null when code runs eagerly. */
    public static Tracer active() {
        return ACTIVE.get();
    }

    /** Traces {@code block} for {@code signature}'s inputs; outputs are named by the signature (or output, output_1, ...). */
    public static Graph trace(Block block, Signature signature) {
        if (ACTIVE.get() != null) {
            throw KilnException.of(ErrorCode.TRACE_ERROR, "Cannot compile a model while another one is being traced on this thread");
        }
        Tracer tracer = new Tracer();
        ACTIVE.set(tracer);
        try {
            List<Tensor> inputs = new ArrayList<>();
            for (Signature.Spec spec : signature.inputs()) {
                inputs.add(new SymbolicTensor(tracer, tracer.builder.input(spec.name(), new TensorType(spec.dtype(), spec.shape()))));
            }
            List<Tensor> outputs = block.forwardAll(inputs.toArray(new Tensor[0]));
            if (!signature.outputs().isEmpty() && signature.outputs().size() != outputs.size()) {
                throw KilnException.of(ErrorCode.SHAPE_MISMATCH, "The signature names %d outputs %s but the model returned %d",
                        signature.outputs().size(), signature.outputs(), outputs.size());
            }
            for (int i = 0; i < outputs.size(); i++) {
                String name = signature.outputs().isEmpty() ? (i == 0 ? "output" : "output_" + i) : signature.outputs().get(i).name();
                tracer.builder.output(name, tracer.valueOf(outputs.get(i)));
            }
            return tracer.builder.build();
        } finally {
            ACTIVE.remove();
        }
    }

    /** The symbolic tensor for a parameter; each parameter becomes one graph value, however often it is read. */
    public Tensor parameter(String name, TensorData data) {
        return new SymbolicTensor(this, builder.parameter(name, data));
    }

    Value valueOf(Tensor tensor) {
        if (tensor instanceof SymbolicTensor symbolic) {
            if (symbolic.engine() != this) {
                throw KilnException.of(ErrorCode.TRACE_ERROR, CallScope.locate("a symbolic tensor from another trace was used"));
            }
            return symbolic.value();
        }
        // An eager tensor captured by the model code: its current values become a constant of the graph.
        return builder.constant(tensor.toData());
    }

    @Override
    public Tensor constant(TensorData data) {
        return new SymbolicTensor(this, builder.constant(data));
    }

    @Override
    public List<Tensor> apply(String op, Attributes attributes, List<Tensor> inputs) {
        List<Value> values = new ArrayList<>(inputs.size());
        for (Tensor t : inputs) {
            values.add(valueOf(t));
        }
        List<Value> outs;
        try {
            outs = builder.add(op, attributes, values, null);
        } catch (KilnException e) {
            throw new KilnException(e.code(), CallScope.locate(e.getMessage()), e);
        }
        builder.nameLast(CallScope.currentPath());
        List<Tensor> result = new ArrayList<>(outs.size());
        for (Value v : outs) {
            result.add(new SymbolicTensor(this, v));
        }
        return result;
    }
}
