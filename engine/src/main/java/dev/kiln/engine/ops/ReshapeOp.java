package dev.kiln.engine.ops;

import dev.kiln.engine.backend.Kernel;
import dev.kiln.engine.backend.Slot;
import dev.kiln.engine.ir.Attributes;
import dev.kiln.engine.ir.TensorType;
import dev.kiln.engine.tensor.Dim;
import dev.kiln.engine.tensor.Shape;

import java.util.Arrays;
import java.util.List;

/**
 * Reinterprets a tensor with a new shape of the same element count (row-major). In the target, 0 copies the input's
 * dimension at that position and -1 is inferred (ONNX Reshape semantics), which is how the symbolic batch passes.
 */
public final class ReshapeOp extends BaseOp {
    ReshapeOp() {
        super(OpRegistry.RESHAPE, "Same elements, new shape (row-major); a view, no copy", List.of("x"), 1,
                List.of(attr("shape", "int[]", true, "target sizes; 0 copies the input dimension, -1 is inferred (at most one)")));
    }

    @Override
    public List<TensorType> inferTypes(List<TensorType> inputs, Attributes attributes) {
        checkArity(inputs);
        return List.of(TensorType.float32(target(inputs.get(0).shape(), attributes.getLongs("shape"))));
    }

    static Shape target(Shape in, long[] spec) {
        Dim[] out = new Dim[spec.length];
        int inferred = -1;
        for (int i = 0; i < spec.length; i++) {
            if (spec[i] == 0) {
                if (i >= in.rank()) {
                    throw shapeError("reshape of %s to %s: 0 at position %d has no input dimension to copy", in, Arrays.toString(spec), i);
                }
                out[i] = in.dim(i);
            } else if (spec[i] == -1) {
                if (inferred >= 0) {
                    throw shapeError("reshape of %s to %s: more than one -1", in, Arrays.toString(spec));
                }
                inferred = i;
            } else if (spec[i] > 0) {
                out[i] = Dim.of(spec[i]);
            } else {
                throw shapeError("reshape of %s to %s: invalid size %d", in, Arrays.toString(spec), spec[i]);
            }
        }
        // Element counts as (symbol factor, constant): in = sIn * batch or cIn.
        Dim inCount = count(in.dims(), -1);
        if (inferred >= 0) {
            Dim known = count(Arrays.asList(out), inferred);
            if (known.isSymbolic() && inCount.isConcrete()) {
                throw shapeError("reshape of %s to %s: target is symbolic but input is not", in, Arrays.toString(spec));
            }
            if (known.isSymbolic()) {
                if (inCount.factor() % known.factor() != 0) {
                    throw shapeError("reshape of %s to %s: %s elements do not divide into %s", in, Arrays.toString(spec), inCount, known);
                }
                out[inferred] = Dim.of(inCount.factor() / known.factor());
            } else {
                if (known.factor() == 0 || inCount.factor() % known.factor() != 0) {
                    throw shapeError("reshape of %s to %s: %s elements do not divide into %s", in, Arrays.toString(spec), inCount, known);
                }
                out[inferred] = inCount.isSymbolic()
                        ? Dim.symbol(inCount.symbolName()).times(inCount.factor() / known.factor())
                        : Dim.of(inCount.factor() / known.factor());
            }
        }
        Shape result = Shape.of(out);
        Dim outCount = count(result.dims(), -1);
        if (!outCount.equals(inCount)) {
            throw shapeError("reshape of %s to %s: element counts differ (%s vs %s)", in, result, inCount, outCount);
        }
        return result;
    }

    private static Dim count(List<Dim> dims, int skip) {
        String symbol = null;
        long factor = 1;
        for (int i = 0; i < dims.size(); i++) {
            if (i == skip) {
                continue;
            }
            Dim d = dims.get(i);
            if (d.isSymbolic()) {
                symbol = d.symbolName();
            }
            factor *= d.factor();
        }
        return symbol == null ? Dim.of(factor) : Dim.symbol(symbol).times(factor);
    }

    @Override
    public boolean aliasesInput() {
        return true;
    }

    @Override
    public Kernel newKernel(Slot[] inputs, Slot[] outputs, Attributes attributes) {
        return copyUnlessAliased(inputs[0], outputs[0]);
    }

    /** A kernel that copies when input and output do not share storage (for example, in constant folding). */
    static Kernel copyUnlessAliased(Slot in, Slot out) {
        if (in.buffer() == out.buffer() && in.offset() == out.offset()) {
            return Kernel.NO_OP;
        }
        return batch -> {
            int n = out.elementCount(batch);
            for (int i = 0; i < n; i++) {
                out.put(i, in.get(i));
            }
        };
    }
}
