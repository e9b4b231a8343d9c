package dev.kiln.engine.ops;

import dev.kiln.engine.backend.Kernel;
import dev.kiln.engine.backend.Slot;
import dev.kiln.engine.ir.Attributes;
import dev.kiln.engine.ir.TensorType;
import dev.kiln.engine.tensor.Dim;
import dev.kiln.engine.tensor.Shape;

import java.util.Arrays;
import java.util.List;

/** Permutes axes: output axis i is input axis perm[i]. Materialises a contiguous copy. */
public final class TransposeOp extends BaseOp {
    TransposeOp() {
        super(OpRegistry.TRANSPOSE, "Permutes axes: output axis i is input axis perm[i]", List.of("x"), 1,
                List.of(attr("perm", "int[]", true, "a permutation of 0..rank-1")));
    }

    public static int[] permutation(Shape in, long[] perm) {
        if (perm.length != in.rank()) {
            throw shapeError("transpose of %s: perm %s has %d entries, expected %d", in, Arrays.toString(perm), perm.length, in.rank());
        }
        int[] p = new int[perm.length];
        boolean[] seen = new boolean[perm.length];
        for (int i = 0; i < perm.length; i++) {
            int axis = in.normalizeAxis((int) perm[i]);
            if (seen[axis]) {
                throw shapeError("transpose of %s: perm %s is not a permutation", in, Arrays.toString(perm));
            }
            seen[axis] = true;
            p[i] = axis;
        }
        return p;
    }

    @Override
    public List<TensorType> inferTypes(List<TensorType> inputs, Attributes attributes) {
        checkArity(inputs);
        Shape in = inputs.get(0).shape();
        int[] p = permutation(in, attributes.getLongs("perm"));
        Dim[] out = new Dim[p.length];
        for (int i = 0; i < p.length; i++) {
            out[i] = in.dim(p[i]);
        }
        return List.of(TensorType.float32(Shape.of(out)));
    }

    @Override
    public Kernel newKernel(Slot[] inputs, Slot[] outputs, Attributes attributes) {
        Slot in = inputs[0];
        Slot out = outputs[0];
        int[] p = permutation(in.type().shape(), attributes.getLongs("perm"));
        int rank = p.length;
        long[] outDims = new long[rank];
        int[] inStrides = new int[rank];
        int[] strideForOut = new int[rank];
        int[] counter = new int[rank];
        return batch -> {
            int stride = 1;
            for (int i = rank - 1; i >= 0; i--) {
                inStrides[i] = stride;
                stride *= (int) in.size(i, batch);
            }
            for (int i = 0; i < rank; i++) {
                outDims[i] = in.size(p[i], batch);
                strideForOut[i] = inStrides[p[i]];
            }
            int n = out.elementCount(batch);
            Arrays.fill(counter, 0);
            int ii = 0;
            for (int i = 0; i < n; i++) {
                out.put(i, in.get(ii));
                for (int d = rank - 1; d >= 0; d--) {
                    counter[d]++;
                    ii += strideForOut[d];
                    if (counter[d] < outDims[d]) {
                        break;
                    }
                    ii -= strideForOut[d] * counter[d];
                    counter[d] = 0;
                }
            }
        };
    }
}
