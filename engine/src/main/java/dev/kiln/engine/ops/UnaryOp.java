package dev.kiln.engine.ops;

import dev.kiln.engine.backend.Kernel;
import dev.kiln.engine.backend.Slot;
import dev.kiln.engine.ir.Attributes;
import dev.kiln.engine.ir.TensorType;

import java.nio.FloatBuffer;
import java.util.List;

/** Elementwise functions of one tensor: exp, log, sqrt, erf, neg, and the activations. */
public final class UnaryOp extends BaseOp {
    /** A float function applied elementwise. */
    public interface Fn {
        float apply(float x);
    }

    private final Fn fn;

    UnaryOp(String name, String summary, Fn fn) {
        super(name, summary, List.of("x"), 1, List.of());
        this.fn = fn;
    }

    static UnaryOp of(Activation activation) {
        return new UnaryOp(activation.opName(), activation.opName() + "(x), elementwise", activation::apply);
    }

    public Fn function() {
        return fn;
    }

    @Override
    public List<TensorType> inferTypes(List<TensorType> inputs, Attributes attributes) {
        checkArity(inputs);
        return List.of(inputs.get(0));
    }

    @Override
    public boolean canRunInPlace(int index) {
        return true;
    }

    @Override
    public Kernel newKernel(Slot[] inputs, Slot[] outputs, Attributes attributes) {
        Slot in = inputs[0];
        Slot out = outputs[0];
        FloatBuffer src = in.buffer();
        FloatBuffer dst = out.buffer();
        int srcOffset = in.offset();
        int dstOffset = out.offset();
        return batch -> {
            int n = out.elementCount(batch);
            for (int i = 0; i < n; i++) {
                dst.put(dstOffset + i, fn.apply(src.get(srcOffset + i)));
            }
        };
    }
}
