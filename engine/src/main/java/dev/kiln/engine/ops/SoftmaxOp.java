package dev.kiln.engine.ops;

import dev.kiln.engine.backend.Kernel;
import dev.kiln.engine.backend.Slot;
import dev.kiln.engine.ir.Attributes;
import dev.kiln.engine.ir.TensorType;

import java.nio.FloatBuffer;
import java.util.List;

/** Softmax along one axis, computed stably (the maximum is subtracted first). */
public final class SoftmaxOp extends BaseOp {
    SoftmaxOp() {
        super(OpRegistry.SOFTMAX, "exp(x - max) / sum(exp(x - max)) along axis", List.of("x"), 1,
                List.of(attr("axis", "int", false, "the axis to normalise, negative counts from the end; default -1")));
    }

    @Override
    public List<TensorType> inferTypes(List<TensorType> inputs, Attributes attributes) {
        checkArity(inputs);
        inputs.get(0).shape().normalizeAxis((int) attributes.getLong("axis", -1));
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
        int axis = in.type().shape().normalizeAxis((int) attributes.getLong("axis", -1));
        int rank = in.rank();
        return batch -> {
            int outer = 1;
            int inner = 1;
            for (int i = 0; i < axis; i++) {
                outer *= (int) in.size(i, batch);
            }
            for (int i = axis + 1; i < rank; i++) {
                inner *= (int) in.size(i, batch);
            }
            int n = (int) in.size(axis, batch);
            FloatBuffer src = in.buffer();
            FloatBuffer dst = out.buffer();
            for (int o = 0; o < outer; o++) {
                for (int q = 0; q < inner; q++) {
                    int base = o * n * inner + q;
                    float max = Float.NEGATIVE_INFINITY;
                    boolean nan = false;
                    for (int i = 0; i < n; i++) {
                        float v = src.get(in.offset() + base + i * inner);
                        nan |= Float.isNaN(v);
                        max = Math.max(max, v);
                    }
                    double sum = 0;
                    for (int i = 0; i < n; i++) {
                        float e = (float) Math.exp(src.get(in.offset() + base + i * inner) - max);
                        dst.put(out.offset() + base + i * inner, e);
                        sum += e;
                    }
                    float scale = (float) (1.0 / sum);
                    for (int i = 0; i < n; i++) {
                        int idx = out.offset() + base + i * inner;
                        dst.put(idx, nan ? Float.NaN : dst.get(idx) * scale);
                    }
                }
            }
        };
    }
}
