package dev.kiln.engine.ops;

import dev.kiln.engine.backend.Kernel;
import dev.kiln.engine.backend.Slot;
import dev.kiln.engine.ir.Attributes;
import dev.kiln.engine.ir.TensorType;
import dev.kiln.engine.tensor.Dim;
import dev.kiln.engine.tensor.Shape;

import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/** Sum or mean over a set of axes, keeping them as size 1 or dropping them. */
public final class ReduceOp extends BaseOp {
    private final boolean mean;

    ReduceOp(String name, boolean mean) {
        super(name, (mean ? "Mean" : "Sum") + " over the given axes", List.of("x"), 1,
                List.of(attr("axes", "int[]", true, "axes to reduce, negative counts from the end"),
                        attr("keepdims", "int", false, "1 keeps reduced axes as size 1 (default), 0 drops them")));
        this.mean = mean;
    }

    public static boolean[] reducedAxes(Shape shape, long[] axes) {
        boolean[] reduced = new boolean[shape.rank()];
        for (long axis : axes) {
            reduced[shape.normalizeAxis((int) axis)] = true;
        }
        return reduced;
    }

    @Override
    public List<TensorType> inferTypes(List<TensorType> inputs, Attributes attributes) {
        checkArity(inputs);
        Shape in = inputs.get(0).shape();
        boolean[] reduced = reducedAxes(in, attributes.getLongs("axes"));
        boolean keep = attributes.getLong("keepdims", 1) != 0;
        List<Dim> out = new ArrayList<>();
        for (int i = 0; i < in.rank(); i++) {
            if (!reduced[i]) {
                out.add(in.dim(i));
            } else if (keep) {
                out.add(Dim.of(1));
            }
        }
        return List.of(TensorType.float32(Shape.of(out)));
    }

    @Override
    public Kernel newKernel(Slot[] inputs, Slot[] outputs, Attributes attributes) {
        Slot in = inputs[0];
        Slot out = outputs[0];
        Shape shape = in.type().shape();
        boolean[] reduced = reducedAxes(shape, attributes.getLongs("axes"));
        int rank = shape.rank();
        long[] dims = new long[rank];
        int[] outStrides = new int[rank];
        int[] counter = new int[rank];
        return batch -> {
            int stride = 1;
            long reducedCount = 1;
            for (int i = rank - 1; i >= 0; i--) {
                dims[i] = in.size(i, batch);
                if (reduced[i]) {
                    outStrides[i] = 0;
                    reducedCount *= dims[i];
                } else {
                    outStrides[i] = stride;
                    stride *= (int) dims[i];
                }
            }
            int outCount = stride;
            FloatBuffer src = in.buffer();
            FloatBuffer dst = out.buffer();
            for (int i = 0; i < outCount; i++) {
                dst.put(out.offset() + i, 0f);
            }
            int n = in.elementCount(batch);
            Arrays.fill(counter, 0);
            int oi = 0;
            for (int i = 0; i < n; i++) {
                int idx = out.offset() + oi;
                dst.put(idx, dst.get(idx) + src.get(in.offset() + i));
                for (int d = rank - 1; d >= 0; d--) {
                    counter[d]++;
                    oi += outStrides[d];
                    if (counter[d] < dims[d]) {
                        break;
                    }
                    oi -= outStrides[d] * counter[d];
                    counter[d] = 0;
                }
            }
            if (mean && reducedCount > 0) {
                float scale = (float) (1.0 / reducedCount);
                for (int i = 0; i < outCount; i++) {
                    dst.put(out.offset() + i, dst.get(out.offset() + i) * scale);
                }
            }
        };
    }
}
