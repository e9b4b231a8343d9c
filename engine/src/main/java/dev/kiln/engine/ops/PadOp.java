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
 * Pads every axis with {@code pads[i]} values before and {@code pads[rank + i]} after (ONNX Pad's layout), as ONNX
 * Pad and {@code torch.nn.functional.pad}: {@code constant} fills with {@code value}, {@code reflect} mirrors without
 * repeating the edge (numpy's and ONNX's reflect, periodic when the pad is longer than the axis), {@code edge} repeats
 * the edge. A symbolic
 * (batch) axis cannot be padded.
 */
public final class PadOp extends BaseOp {
    PadOp() {
        super(OpRegistry.PAD, "pads each axis before and after (ONNX Pad: constant, reflect or edge)", List.of("x"), 1,
                List.of(attr("pads", "int[2*rank]", true, "[begin_0, ..., begin_{r-1}, end_0, ..., end_{r-1}], each >= 0"),
                        attr("mode", "string", false, "constant (default), reflect or edge"),
                        attr("value", "float", false, "the fill value of constant mode (default 0)")));
    }

    private enum Mode { CONSTANT, REFLECT, EDGE }

    private static Mode mode(Attributes a) {
        String m = a.getString("mode", "constant");
        return switch (m) {
            case "constant" -> Mode.CONSTANT;
            case "reflect" -> Mode.REFLECT;
            case "edge" -> Mode.EDGE;
            default -> throw shapeError("pad mode must be constant, reflect or edge but got '%s'", m);
        };
    }

    @Override
    public List<TensorType> inferTypes(List<TensorType> inputs, Attributes attributes) {
        checkArity(inputs);
        Shape x = inputs.get(0).shape();
        long[] pads = attributes.getLongs("pads");
        Mode mode = mode(attributes);
        int rank = x.rank();
        if (pads.length != 2 * rank) {
            throw shapeError("pad of %s needs %d pads (begins then ends) but got %s", x, 2 * rank, Arrays.toString(pads));
        }
        Dim[] dims = new Dim[rank];
        for (int i = 0; i < rank; i++) {
            long before = pads[i];
            long after = pads[rank + i];
            if (before < 0 || after < 0) {
                throw shapeError("pad of %s: negative pads (cropping) are not supported, got %s", x, Arrays.toString(pads));
            }
            Dim d = x.dim(i);
            if (before == 0 && after == 0) {
                dims[i] = d;
                continue;
            }
            if (d.isSymbolic()) {
                throw shapeError("pad of %s: axis %d is the batch axis (%s) and cannot be padded", x, i, d);
            }
            if (mode != Mode.CONSTANT && d.size() == 0) {
                throw shapeError("pad of %s: %s padding of the empty axis %d", x, mode.name().toLowerCase(java.util.Locale.ROOT), i);
            }
            dims[i] = Dim.of(d.size() + before + after);
        }
        return List.of(TensorType.float32(Shape.of(dims)));
    }

    @Override
    public Kernel newKernel(Slot[] inputs, Slot[] outputs, Attributes attributes) {
        Slot x = inputs[0];
        Slot out = outputs[0];
        long[] pads = attributes.getLongs("pads");
        Mode mode = mode(attributes);
        float value = (float) attributes.getDouble("value", 0);
        int rank = x.rank();
        return batch -> {
            int[] in = new int[rank];
            int[] os = new int[rank];
            for (int i = 0; i < rank; i++) {
                in[i] = (int) x.size(i, batch);
                os[i] = (int) out.size(i, batch);
            }
            int total = out.elementCount(batch);
            int[] at = new int[rank];
            for (int o = 0; o < total; o++) {
                int source = 0;
                boolean inside = true;
                for (int i = 0; i < rank && inside; i++) {
                    int c = at[i] - (int) pads[i];
                    if (c < 0 || c >= in[i]) {
                        switch (mode) {
                            case CONSTANT -> inside = false;
                            case EDGE -> c = c < 0 ? 0 : in[i] - 1;
                            case REFLECT -> c = reflect(c, in[i]);
                        }
                    }
                    source = source * in[i] + c;
                }
                out.put(o, inside ? x.get(source) : value);
                for (int i = rank - 1; i >= 0; i--) {
                    if (++at[i] < os[i]) {
                        break;
                    }
                    at[i] = 0;
                }
            }
        };
    }

    /** numpy's reflect of coordinate {@code c} into an axis of {@code n}: period 2(n - 1), a single value repeats. */
    static int reflect(int c, int n) {
        if (n == 1) {
            return 0;
        }
        int period = 2 * (n - 1);
        int r = Math.floorMod(c, period);
        return r < n ? r : period - r;
    }
}
