package dev.kiln.format.onnx;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;
import dev.kiln.engine.ir.Attributes;
import dev.kiln.engine.ir.GraphBuilder;
import dev.kiln.engine.ir.Value;
import dev.kiln.engine.ops.OpRegistry;
import dev.kiln.engine.tensor.DType;
import dev.kiln.engine.tensor.TensorData;
import dev.kiln.format.onnx.proto.Onnx;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;
import dev.kiln.engine.tensor.Dim;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * ONNX op converters: each ONNX op maps onto Kiln IR ops (one converter per op, with a check of the attributes it
 * cannot honour). The supported set is what {@link #supported()} lists; docs/FORMAT.md's op reference lists the IR ops.
 */
final class OnnxOps {
    /** Converts one node. */
    private interface Converter {
        void convert(Onnx.NodeProto node, OnnxImporter in);
    }

    /** Returns null when the node can be converted, else why not ("" when the op is unknown). */
    private interface Check {
        String check(Onnx.NodeProto node, OnnxImporter.Context context);
    }

    private record Entry(Converter converter, Check check) { }

    private static final Map<String, Entry> OPS = new TreeMap<>();

    static {
        for (String[] binary : new String[][] {{"Add", OpRegistry.ADD}, {"Sub", OpRegistry.SUB}, {"Mul", OpRegistry.MUL}, {"Div", OpRegistry.DIV},
                {"Pow", OpRegistry.POW}}) {
            register(binary[0], (n, in) -> {
                OnnxImporter.ShapeValue a = in.shapeValue(n.getInput(0));
                OnnxImporter.ShapeValue b = in.shapeValue(n.getInput(1));
                if (a != null && b != null) {
                    in.defineShapeValue(n.getOutput(0), shapeArithmetic(binary[0], a, b));
                    return;
                }
                in.define(n.getOutput(0), in.builder().add1(binary[1], Attributes.EMPTY, n.getName(), in.value(n.getInput(0)), in.value(n.getInput(1))));
            }, (n, c) -> null);
        }
        for (String[] unary : new String[][] {{"Sqrt", OpRegistry.SQRT}, {"Exp", OpRegistry.EXP}, {"Log", OpRegistry.LOG}, {"Erf", OpRegistry.ERF},
                {"Tanh", "tanh"}, {"Sigmoid", "sigmoid"}, {"Relu", "relu"}, {"Identity", OpRegistry.IDENTITY}}) {
            register(unary[0], (n, in) -> in.define(n.getOutput(0), in.builder().add1(unary[1], Attributes.EMPTY, n.getName(), in.value(n.getInput(0)))),
                    (n, c) -> null);
        }
        register("Dropout", (n, in) -> in.define(n.getOutput(0), in.value(n.getInput(0))),
                (n, c) -> n.getOutputCount() > 1 && !n.getOutput(1).isEmpty() ? "the mask output is not supported (inference only)" : null);
        register("Softmax", (n, in) -> in.define(n.getOutput(0),
                in.builder().add1(OpRegistry.SOFTMAX, Attributes.of("axis", intAttr(n, "axis", -1)), n.getName(), in.value(n.getInput(0)))), (n, c) -> null);
        register("MatMul", (n, in) -> in.define(n.getOutput(0),
                in.builder().add1(OpRegistry.MATMUL, Attributes.EMPTY, n.getName(), in.value(n.getInput(0)), in.value(n.getInput(1)))), (n, c) -> null);
        register("Gemm", OnnxOps::gemm, (n, c) -> {
            if (intAttr(n, "transA", 0) != 0) {
                return "transA=1 is not supported";
            }
            return null;
        });
        register("Flatten", (n, in) -> in.define(n.getOutput(0),
                in.builder().add1(OpRegistry.RESHAPE, Attributes.of("shape", new long[] {0, -1}), n.getName(), in.value(n.getInput(0)))),
                (n, c) -> intAttr(n, "axis", 1) != 1 ? "axis other than 1 is not supported" : null);
        register("Reshape", (n, in) -> {
            Value x = in.value(n.getInput(0));
            OnnxImporter.ShapeValue target = in.shapeValue(n.getInput(1));
            long[] shape;
            if (target != null) {
                shape = new long[target.values().size()];
                for (int i = 0; i < shape.length; i++) {
                    dev.kiln.engine.tensor.Dim d = target.values().get(i);
                    boolean same = i < x.type().rank() && x.type().shape().dim(i).equals(d);
                    shape[i] = d.isConcrete() ? d.size() : same ? 0 : -1;
                }
            } else {
                shape = longs(in.constant(n.getInput(1)), n.getInput(1));
            }
            in.define(n.getOutput(0), in.builder().add1(OpRegistry.RESHAPE, Attributes.of("shape", shape), n.getName(), x));
        }, (n, c) -> intAttr(n, "allowzero", 0) != 0 ? "allowzero=1 is not supported" : null);
        register("Transpose", (n, in) -> {
            Value x = in.value(n.getInput(0));
            long[] perm = intsAttr(n, "perm");
            if (perm == null) {
                int rank = x.type().rank();
                perm = new long[rank];
                for (int i = 0; i < rank; i++) {
                    perm[i] = rank - 1 - i;
                }
            }
            in.define(n.getOutput(0), in.builder().add1(OpRegistry.TRANSPOSE, Attributes.of("perm", perm), n.getName(), x));
        }, (n, c) -> null);
        register("Concat", (n, in) -> {
            List<Dim> joined = new java.util.ArrayList<>();
            boolean shapes = true;
            for (String input : n.getInputList()) {
                OnnxImporter.ShapeValue v = in.shapeValue(input);
                if (v == null) {
                    shapes = false;
                    break;
                }
                joined.addAll(v.values());
            }
            if (shapes) {
                in.defineShapeValue(n.getOutput(0), new OnnxImporter.ShapeValue(joined, false));
                return;
            }
            List<Value> inputs = n.getInputList().stream().map(in::value).toList();
            in.define(n.getOutput(0), in.builder().add(OpRegistry.CONCAT, Attributes.of("axis", intAttr(n, "axis", 0)), inputs, n.getName()).get(0));
        }, (n, c) -> null);
        register("ReduceMean", (n, in) -> reduce(n, in, OpRegistry.REDUCE_MEAN, intsAttr(n, "axes")),
                (n, c) -> intsAttr(n, "axes") == null ? "reducing over all axes is not supported" : null);
        register("ReduceSum", (n, in) -> reduce(n, in, OpRegistry.REDUCE_SUM, longs(in.constant(n.getInput(1)), n.getInput(1))),
                (n, c) -> n.getInputCount() < 2 || !c.isConstant(n.getInput(1)) ? "axes must be a constant input" : null);
        register("Conv", (n, in) -> {
            Value x = in.value(n.getInput(0));
            Value w = in.value(n.getInput(1));
            Attributes attrs = Attributes.of("groups", intAttr(n, "group", 1));
            long[] strides = intsAttr(n, "strides");
            long[] pads = intsAttr(n, "pads");
            long[] dilations = intsAttr(n, "dilations");
            if (strides != null) {
                attrs = attrs.with("strides", strides);
            }
            if (pads != null) {
                attrs = attrs.with("pads", pads);
            }
            if (dilations != null) {
                attrs = attrs.with("dilations", dilations);
            }
            List<Value> inputs = n.getInputCount() > 2 && !n.getInput(2).isEmpty() ? List.of(x, w, in.value(n.getInput(2))) : List.of(x, w);
            in.define(n.getOutput(0), in.builder().add(OpRegistry.CONV2D, attrs, inputs, n.getName()).get(0));
        }, (n, c) -> {
            String autoPad = stringAttr(n, "auto_pad", "NOTSET");
            if (!autoPad.equals("NOTSET") && !autoPad.equals("VALID")) {
                return "auto_pad=" + autoPad + " is not supported; export with explicit pads";
            }
            long[] k = intsAttr(n, "kernel_shape");
            return k != null && k.length != 2 ? "only 2-D convolutions are supported" : null;
        });
        register("MaxPool", (n, in) -> {
            Attributes attrs = Attributes.of("kernel", intsAttr(n, "kernel_shape"));
            if (intsAttr(n, "strides") != null) {
                attrs = attrs.with("strides", intsAttr(n, "strides"));
            }
            if (intsAttr(n, "pads") != null) {
                attrs = attrs.with("pads", intsAttr(n, "pads"));
            }
            in.define(n.getOutput(0), in.builder().add1(OpRegistry.MAX_POOL2D, attrs, n.getName(), in.value(n.getInput(0))));
        }, (n, c) -> {
            long[] k = intsAttr(n, "kernel_shape");
            long[] d = intsAttr(n, "dilations");
            if (k == null || k.length != 2) {
                return "only 2-D pooling is supported";
            }
            if (intAttr(n, "ceil_mode", 0) != 0 || d != null && (d[0] != 1 || d[1] != 1) || n.getOutputCount() > 1) {
                return "ceil_mode, dilations and the indices output are not supported";
            }
            if (!stringAttr(n, "auto_pad", "NOTSET").equals("NOTSET")) {
                return "auto_pad other than NOTSET is not supported (explicit pads are)";
            }
            return null;
        });
        register("GlobalAveragePool", (n, in) -> in.define(n.getOutput(0), in.builder().add1(OpRegistry.REDUCE_MEAN,
                Attributes.of("axes", new long[] {2, 3}, "keepdims", 1), n.getName(), in.value(n.getInput(0)))),
                (n, c) -> null);
        register("Shape", (n, in) -> in.defineShapeValue(n.getOutput(0),
                new OnnxImporter.ShapeValue(in.value(n.getInput(0)).type().shape().dims(), false)),
                (n, c) -> n.getAttributeCount() > 0 ? "start/end attributes are not supported" : null);
        register("Gather", (n, in) -> {
            OnnxImporter.ShapeValue data = in.shapeValue(n.getInput(0));
            OnnxImporter.ShapeValue index = in.shapeValue(n.getInput(1));
            if (data == null && index != null && !index.values().isEmpty()) {
                gatherConstantIndices(n, in, index);
                return;
            }
            TensorData table = in.constant(n.getInput(0));
            if (index == null && table != null && table.dtype() == DType.FLOAT32 && in.hasValue(n.getInput(1)) && intAttr(n, "axis", 0) == 0) {
                // An embedding lookup: rows of a constant table picked by computed (input) indices.
                in.define(n.getOutput(0), in.builder().add1(OpRegistry.GATHER, Attributes.EMPTY, n.getName(),
                        in.value(n.getInput(0)), in.value(n.getInput(1))));
                return;
            }
            if (data == null || index == null || intAttr(n, "axis", 0) != 0) {
                throw KilnException.of(ErrorCode.UNSUPPORTED_OP,
                        "Gather needs constant indices, a shape known at import time, or a constant table indexed on axis 0 (an embedding)");
            }
            List<Dim> picked = new java.util.ArrayList<>();
            for (dev.kiln.engine.tensor.Dim i : index.values()) {
                long k = i.size() < 0 ? i.size() + data.values().size() : i.size();
                picked.add(data.values().get((int) k));
            }
            in.defineShapeValue(n.getOutput(0), new OnnxImporter.ShapeValue(picked, index.scalar()));
        }, (n, c) -> null);
        register("Unsqueeze", (n, in) -> {
            OnnxImporter.ShapeValue v = in.shapeValue(n.getInput(0));
            if (v != null && v.scalar()) {
                in.defineShapeValue(n.getOutput(0), new OnnxImporter.ShapeValue(v.values(), false));
                return;
            }
            long[] axes = longs(in.constant(n.getInput(1)), n.getInput(1));
            Value x = in.value(n.getInput(0));
            int rank = x.type().rank() + axes.length;
            java.util.Set<Integer> inserted = new java.util.HashSet<>();
            for (long a : axes) {
                inserted.add((int) (a < 0 ? a + rank : a));
            }
            long[] shape = new long[rank];
            int from = 0;
            for (int i = 0; i < rank; i++) {
                if (inserted.contains(i)) {
                    shape[i] = 1;
                } else {
                    shape[i] = x.type().shape().dim(from).isConcrete() ? x.type().shape().dim(from).size() : (i == from ? 0 : -1);
                    from++;
                }
            }
            in.define(n.getOutput(0), in.builder().add1(OpRegistry.RESHAPE, Attributes.of("shape", shape), n.getName(), x));
        }, (n, c) -> n.getInputCount() < 2 ? "axes as an attribute (opset < 13) is not supported" : null);
        register("Cast", (n, in) -> {
            long to = intAttr(n, "to", 1);
            OnnxImporter.ShapeValue v = in.shapeValue(n.getInput(0));
            if (v != null && to == Onnx.TensorProto.DataType.INT64_VALUE) {
                in.defineShapeValue(n.getOutput(0), v);
            } else if (v != null && to == Onnx.TensorProto.DataType.FLOAT_VALUE && v.values().stream().allMatch(dev.kiln.engine.tensor.Dim::isConcrete)) {
                float[] values = new float[v.values().size()];
                for (int i = 0; i < values.length; i++) {
                    values[i] = v.values().get(i).size();
                }
                in.define(n.getOutput(0), in.builder().constant(TensorData.ofFloats(v.scalar() ? new long[0] : new long[] {values.length}, values)));
            } else if (v == null && to == Onnx.TensorProto.DataType.FLOAT_VALUE) {
                in.define(n.getOutput(0), in.value(n.getInput(0)));
            } else {
                throw KilnException.of(ErrorCode.UNSUPPORTED_OP, "Cast to data type %d of a tensor computed at run time is not supported", to);
            }
        }, (n, c) -> null);
        register("LayerNormalization", OnnxOps::layerNorm, (n, c) -> n.getOutputCount() > 1 && n.getOutputList().stream().skip(1).anyMatch(o -> !o.isEmpty())
                ? "the mean and inverse-deviation outputs are not supported" : null);
        register("Split", (n, in) -> {
            long[] sizes = longs(in.constant(n.getInput(1)), n.getInput(1));
            List<Value> parts = in.builder().add(OpRegistry.SPLIT, Attributes.of("axis", intAttr(n, "axis", 0), "sizes", sizes), List.of(in.value(n.getInput(0))), n.getName());
            for (int i = 0; i < parts.size(); i++) {
                in.define(n.getOutput(i), parts.get(i));
            }
        }, (n, c) -> n.getInputCount() < 2 || !c.isConstant(n.getInput(1)) ? "split sizes must be a constant input" : null);
        register("LeakyRelu", (n, in) -> {
            // max(x, 0) + alpha * min(x, 0) = relu(x) - alpha * relu(-x)
            GraphBuilder b = in.builder();
            Value x = in.value(n.getInput(0));
            Value positive = b.add1("relu", Attributes.EMPTY, n.getName(), x);
            Value negative = b.add1("relu", Attributes.EMPTY, n.getName(), b.add1(OpRegistry.NEG, Attributes.EMPTY, n.getName(), x));
            Value scaled = b.add1(OpRegistry.MUL, Attributes.EMPTY, n.getName(), negative, b.constant(TensorData.scalar(floatAttr(n, "alpha", 0.01f))));
            in.define(n.getOutput(0), b.add1(OpRegistry.SUB, Attributes.EMPTY, n.getName(), positive, scaled));
        }, (n, c) -> null);
        register("LogSoftmax", (n, in) -> {
            GraphBuilder b = in.builder();
            Value softmax = b.add1(OpRegistry.SOFTMAX, Attributes.of("axis", intAttr(n, "axis", -1)), n.getName(), in.value(n.getInput(0)));
            in.define(n.getOutput(0), b.add1(OpRegistry.LOG, Attributes.EMPTY, n.getName(), softmax));
        }, (n, c) -> null);
        register("Squeeze", (n, in) -> {
            Value x = in.value(n.getInput(0));
            dev.kiln.engine.tensor.Shape shape = x.type().shape();
            java.util.Set<Integer> axes = new java.util.HashSet<>();
            if (n.getInputCount() > 1 && !n.getInput(1).isEmpty()) {
                for (long a : longs(in.constant(n.getInput(1)), n.getInput(1))) {
                    axes.add(shape.normalizeAxis((int) a));
                }
            } else {
                for (int i = 0; i < shape.rank(); i++) {
                    if (shape.dim(i).equals(Dim.of(1))) {
                        axes.add(i);
                    }
                }
            }
            List<Long> target = new java.util.ArrayList<>();
            for (int i = 0; i < shape.rank(); i++) {
                if (axes.contains(i)) {
                    if (!shape.dim(i).equals(Dim.of(1))) {
                        throw KilnException.of(ErrorCode.SHAPE_MISMATCH, "Squeeze of axis %d of %s, which is not 1", i, shape);
                    }
                    continue;
                }
                Dim d = shape.dim(i);
                target.add(d.isConcrete() ? d.size() : target.size() == i ? 0L : -1L);
            }
            in.define(n.getOutput(0), in.builder().add1(OpRegistry.RESHAPE, Attributes.of("shape", target.stream().mapToLong(Long::longValue).toArray()),
                    n.getName(), x));
        }, (n, c) -> n.getInputCount() > 1 && !n.getInput(1).isEmpty() && !c.isConstant(n.getInput(1)) ? "axes must be a constant input" : null);
        register("BatchNormalization", (n, in) -> {
            // Inference: y = x * a + c per channel (axis 1), a = scale / sqrt(var + eps), c = bias - mean * a, folded here.
            float[] scale = in.constant(n.getInput(1)).toFloatArray();
            float[] bias = in.constant(n.getInput(2)).toFloatArray();
            float[] mean = in.constant(n.getInput(3)).toFloatArray();
            float[] variance = in.constant(n.getInput(4)).toFloatArray();
            double eps = floatAttr(n, "epsilon", 1e-5f);
            Value x = in.value(n.getInput(0));
            int channels = scale.length;
            long[] perChannel = new long[x.type().rank() - 1];
            java.util.Arrays.fill(perChannel, 1);
            perChannel[0] = channels;
            float[] a = new float[channels];
            float[] c = new float[channels];
            for (int i = 0; i < channels; i++) {
                a[i] = (float) (scale[i] / Math.sqrt(variance[i] + eps));
                c[i] = (float) (bias[i] - mean[i] * (double) a[i]);
            }
            GraphBuilder b = in.builder();
            Value y = b.add1(OpRegistry.MUL, Attributes.EMPTY, n.getName(), x, b.constant(TensorData.ofFloats(perChannel, a)));
            in.define(n.getOutput(0), b.add1(OpRegistry.ADD, Attributes.EMPTY, n.getName(), y, b.constant(TensorData.ofFloats(perChannel, c))));
        }, (n, c) -> {
            for (int i = 1; i < 5 && i < n.getInputCount(); i++) {
                if (!c.isConstant(n.getInput(i))) {
                    return "scale, bias, mean and variance must be initializers";
                }
            }
            if (n.getOutputCount() > 1 || intAttr(n, "training_mode", 0) != 0) {
                return "training mode is not supported";
            }
            return null;
        });
        register("Clip", (n, in) -> {
            // clamp(x, lo, hi) = lo + relu(x - lo) - relu(x - hi), exact for lo <= hi; one-sided bounds drop a term.
            GraphBuilder b = in.builder();
            Value x = in.value(n.getInput(0));
            Float lo = n.getInputCount() > 1 && !n.getInput(1).isEmpty() ? in.constant(n.getInput(1)).toFloatArray()[0] : null;
            Float hi = n.getInputCount() > 2 && !n.getInput(2).isEmpty() ? in.constant(n.getInput(2)).toFloatArray()[0] : null;
            Value y = x;
            if (lo != null) {
                Value low = b.constant(TensorData.scalar(lo));
                y = b.add1(OpRegistry.ADD, Attributes.EMPTY, n.getName(), low,
                        b.add1("relu", Attributes.EMPTY, n.getName(), b.add1(OpRegistry.SUB, Attributes.EMPTY, n.getName(), x, low)));
            }
            if (hi != null) {
                Value high = b.constant(TensorData.scalar(hi));
                Value over = b.add1("relu", Attributes.EMPTY, n.getName(), b.add1(OpRegistry.SUB, Attributes.EMPTY, n.getName(), x, high));
                y = b.add1(OpRegistry.SUB, Attributes.EMPTY, n.getName(), y, over);
            }
            in.define(n.getOutput(0), y);
        }, (n, c) -> {
            for (int i = 1; i < n.getInputCount(); i++) {
                if (!n.getInput(i).isEmpty() && !c.isConstant(n.getInput(i))) {
                    return "min and max must be constants";
                }
            }
            return null;
        });
        register("Slice", (n, in) -> {
            if (n.getInputCount() > 4 && !n.getInput(4).isEmpty()) {
                for (long step : longs(in.constant(n.getInput(4)), n.getInput(4))) {
                    if (step != 1) {
                        throw KilnException.of(ErrorCode.UNSUPPORTED_OP, "Slice with step %d is not supported (only 1)", step);
                    }
                }
            }
            // Step-1 slices of concrete axes: a split into [before, kept, after], keeping the middle piece.
            Value x = in.value(n.getInput(0));
            long[] starts = longs(in.constant(n.getInput(1)), n.getInput(1));
            long[] ends = longs(in.constant(n.getInput(2)), n.getInput(2));
            long[] axes = n.getInputCount() > 3 && !n.getInput(3).isEmpty() ? longs(in.constant(n.getInput(3)), n.getInput(3)) : null;
            for (int i = 0; i < starts.length; i++) {
                int axis = x.type().shape().normalizeAxis((int) (axes == null ? i : axes[i]));
                Dim d = x.type().shape().dim(axis);
                if (d.isSymbolic()) {
                    throw KilnException.of(ErrorCode.UNSUPPORTED_OP, "Slice of the symbolic batch axis is not supported");
                }
                long size = d.size();
                long start = Math.max(0, Math.min(size, starts[i] < 0 ? starts[i] + size : starts[i]));
                long end = Math.max(start, Math.min(size, ends[i] < 0 ? ends[i] + size : ends[i]));
                List<Value> parts = in.builder().add(OpRegistry.SPLIT, Attributes.of("axis", axis, "sizes", new long[] {start, end - start, size - end}),
                        List.of(x), n.getName());
                x = parts.get(1);
            }
            in.define(n.getOutput(0), x);
        }, (n, c) -> {
            for (int i = 1; i < n.getInputCount(); i++) {
                if (!n.getInput(i).isEmpty() && !c.isConstant(n.getInput(i))) {
                    return "starts, ends, axes and steps must be constants";
                }
            }
            return null;
        });
        register("AveragePool", (n, in) -> {
            Attributes attrs = Attributes.of("kernel", intsAttr(n, "kernel_shape"), "count_include_pad", intAttr(n, "count_include_pad", 0));
            if (intsAttr(n, "strides") != null) {
                attrs = attrs.with("strides", intsAttr(n, "strides"));
            }
            if (intsAttr(n, "pads") != null) {
                attrs = attrs.with("pads", intsAttr(n, "pads"));
            }
            in.define(n.getOutput(0), in.builder().add1(OpRegistry.AVG_POOL2D, attrs, n.getName(), in.value(n.getInput(0))));
        }, (n, c) -> {
            long[] k = intsAttr(n, "kernel_shape");
            long[] d = intsAttr(n, "dilations");
            if (k == null || k.length != 2) {
                return "only 2-D pooling is supported";
            }
            if (intAttr(n, "ceil_mode", 0) != 0 || d != null && (d[0] != 1 || d[1] != 1)) {
                return "ceil_mode and dilations are not supported";
            }
            if (!stringAttr(n, "auto_pad", "NOTSET").equals("NOTSET")) {
                return "auto_pad other than NOTSET is not supported (explicit pads are)";
            }
            return null;
        });
        register("Pad", (n, in) -> {
            long[] pads = longs(in.constant(n.getInput(1)), n.getInput(1));
            float value = 0;
            if (n.getInputCount() > 2 && !n.getInput(2).isEmpty()) {
                TensorData fill = in.constant(n.getInput(2));
                value = fill.dtype() == DType.FLOAT32 ? fill.toFloatArray()[0] : longs(fill, n.getInput(2))[0];
            }
            in.define(n.getOutput(0), in.builder().add1(OpRegistry.PAD,
                    Attributes.of("pads", pads, "mode", stringAttr(n, "mode", "constant"), "value", (double) value), n.getName(), in.value(n.getInput(0))));
        }, (n, c) -> {
            if (n.getInputCount() < 2 || !c.isConstant(n.getInput(1))) {
                return "pads must be a constant input";
            }
            if (n.getInputCount() > 2 && !n.getInput(2).isEmpty() && !c.isConstant(n.getInput(2))) {
                return "constant_value must be a constant input";
            }
            if (n.getInputCount() > 3 && !n.getInput(3).isEmpty()) {
                return "the axes input is not supported";
            }
            String mode = stringAttr(n, "mode", "constant");
            return mode.equals("constant") || mode.equals("reflect") || mode.equals("edge") ? null : "mode '" + mode + "' is not supported (constant, reflect, edge are)";
        });
        register("Gelu", (n, in) -> in.define(n.getOutput(0),
                in.builder().add1("gelu", Attributes.EMPTY, n.getName(), in.value(n.getInput(0)))),
                (n, c) -> stringAttr(n, "approximate", "none").equals("none") ? null : "only the exact form (approximate='none') is supported");
        register("Constant", (n, in) -> {
            TensorData data = in.tensor(n.getAttribute(0).getT());
            in.defineConstant(n.getOutput(0), data);
            if (data.dtype() == DType.FLOAT32) {
                in.define(n.getOutput(0), in.builder().constant(data));
            }
        }, (n, c) -> n.getAttributeCount() != 1 || !n.getAttribute(0).getName().equals("value") ? "only the 'value' attribute is supported" : null);
    }

    private OnnxOps() {
    }

    private static void register(String op, Converter converter, Check check) {
        OPS.put(op, new Entry(converter, check));
    }

    static Set<String> supported() {
        return OPS.keySet();
    }

    /** Null when the node converts; otherwise the reason ("" for an unknown op). */
    static String check(Onnx.NodeProto node, OnnxImporter.Context context) {
        if (!node.getDomain().isEmpty() && !node.getDomain().equals("ai.onnx")) {
            return "domain '" + node.getDomain() + "' is not supported";
        }
        Entry entry = OPS.get(node.getOpType());
        return entry == null ? "" : entry.check().check(node, context);
    }

    static void convert(Onnx.NodeProto node, OnnxImporter in) {
        OPS.get(node.getOpType()).converter().convert(node, in);
    }

    /** Gather with constant indices along an axis of a computed tensor: one slice per index, joined with concat. */
    private static void gatherConstantIndices(Onnx.NodeProto n, OnnxImporter in, OnnxImporter.ShapeValue index) {
        Value x = in.value(n.getInput(0));
        int axis = x.type().shape().normalizeAxis((int) intAttr(n, "axis", 0));
        Dim d = x.type().shape().dim(axis);
        if (d.isSymbolic() || !index.scalar() && index.values().size() == 0) {
            throw KilnException.of(ErrorCode.UNSUPPORTED_OP, "Gather along the symbolic batch axis is not supported");
        }
        long size = d.size();
        List<Value> picked = new java.util.ArrayList<>();
        for (Dim i : index.values()) {
            long k = i.size();
            if (k >= size) {
                throw KilnException.of(ErrorCode.SHAPE_MISMATCH, "Gather index %d is out of range for axis %d of size %d", k, axis, size);
            }
            picked.add(in.builder().add(OpRegistry.SPLIT, Attributes.of("axis", axis, "sizes", new long[] {k, 1, size - k - 1}), List.of(x), n.getName()).get(1));
        }
        Value joined = picked.size() == 1 ? picked.get(0) : in.builder().add(OpRegistry.CONCAT, Attributes.of("axis", axis), picked, n.getName()).get(0);
        if (index.scalar()) {
            // A scalar index removes the axis.
            dev.kiln.engine.tensor.Shape shape = joined.type().shape();
            long[] target = new long[shape.rank() - 1];
            for (int i = 0, j = 0; i < shape.rank(); i++) {
                if (i == axis) {
                    continue;
                }
                target[j] = shape.dim(i).isConcrete() ? shape.dim(i).size() : (i == j ? 0 : -1);
                j++;
            }
            joined = in.builder().add1(OpRegistry.RESHAPE, Attributes.of("shape", target), n.getName(), joined);
        }
        in.define(n.getOutput(0), joined);
    }

    /** Shape arithmetic at import time (Div by a constant: d // heads). */
    private static OnnxImporter.ShapeValue shapeArithmetic(String op, OnnxImporter.ShapeValue a, OnnxImporter.ShapeValue b) {
        int n = Math.max(a.values().size(), b.values().size());
        List<dev.kiln.engine.tensor.Dim> out = new java.util.ArrayList<>();
        for (int i = 0; i < n; i++) {
            dev.kiln.engine.tensor.Dim x = a.values().get(a.values().size() == 1 ? 0 : i);
            dev.kiln.engine.tensor.Dim y = b.values().get(b.values().size() == 1 ? 0 : i);
            if (!y.isConcrete()) {
                throw KilnException.of(ErrorCode.UNSUPPORTED_OP, "%s of shape values with a symbolic right operand is not supported", op);
            }
            out.add(switch (op) {
                case "Div" -> x.dividedBy(y.size());
                case "Mul" -> x.times(y.size());
                case "Add" -> x.isConcrete() ? dev.kiln.engine.tensor.Dim.of(x.size() + y.size()) : unsupported(op);
                case "Sub" -> x.isConcrete() ? dev.kiln.engine.tensor.Dim.of(x.size() - y.size()) : unsupported(op);
                default -> unsupported(op);
            });
        }
        return new OnnxImporter.ShapeValue(out, a.scalar() && b.scalar());
    }

    private static dev.kiln.engine.tensor.Dim unsupported(String op) {
        throw KilnException.of(ErrorCode.UNSUPPORTED_OP, "%s on a symbolic shape value is not supported", op);
    }

    /** LayerNormalization over the last axis: (x - mean) / sqrt(var + eps) * scale + bias, from registry ops. */
    private static void layerNorm(Onnx.NodeProto n, OnnxImporter in) {
        GraphBuilder b = in.builder();
        Value x = in.value(n.getInput(0));
        long axis = intAttr(n, "axis", -1);
        int rank = x.type().rank();
        if ((axis < 0 ? axis + rank : axis) != rank - 1) {
            throw KilnException.of(ErrorCode.UNSUPPORTED_OP, "LayerNormalization over axes other than the last is not supported (axis %d of rank %d)", axis, rank);
        }
        String name = n.getName();
        Attributes last = Attributes.of("axes", new long[] {-1}, "keepdims", 1);
        Value mean = b.add1(OpRegistry.REDUCE_MEAN, last, name, x);
        Value centered = b.add1(OpRegistry.SUB, Attributes.EMPTY, name, x, mean);
        Value square = b.add1(OpRegistry.MUL, Attributes.EMPTY, name, centered, centered);
        Value variance = b.add1(OpRegistry.REDUCE_MEAN, last, name, square);
        Value eps = b.constant(TensorData.scalar(floatAttr(n, "epsilon", 1e-5f)));
        Value std = b.add1(OpRegistry.SQRT, Attributes.EMPTY, name, b.add1(OpRegistry.ADD, Attributes.EMPTY, name, variance, eps));
        Value y = b.add1(OpRegistry.DIV, Attributes.EMPTY, name, centered, std);
        y = b.add1(OpRegistry.MUL, Attributes.EMPTY, name, y, in.value(n.getInput(1)));
        if (n.getInputCount() > 2 && !n.getInput(2).isEmpty()) {
            y = b.add1(OpRegistry.ADD, Attributes.EMPTY, name, y, in.value(n.getInput(2)));
        }
        in.define(n.getOutput(0), y);
    }

    /** Gemm as PyTorch's Linear exports it: x W^T + b (transB=1) becomes one dense node; otherwise matmul and add. */
    private static void gemm(Onnx.NodeProto n, OnnxImporter in) {
        GraphBuilder b = in.builder();
        Value a = in.value(n.getInput(0));
        Value w = in.value(n.getInput(1));
        Value c = n.getInputCount() > 2 && !n.getInput(2).isEmpty() ? in.value(n.getInput(2)) : null;
        // alpha (A B) + beta C = A (alpha B) + (beta C): with constant weights, constant folding scales them once.
        float alpha = floatAttr(n, "alpha", 1f);
        float beta = floatAttr(n, "beta", 1f);
        if (alpha != 1f) {
            w = b.add1(OpRegistry.MUL, Attributes.EMPTY, n.getName(), w, b.constant(TensorData.scalar(alpha)));
        }
        if (c != null && beta != 1f) {
            c = b.add1(OpRegistry.MUL, Attributes.EMPTY, n.getName(), c, b.constant(TensorData.scalar(beta)));
        }
        Value y;
        if (intAttr(n, "transB", 0) == 1 && (c == null || c.type().rank() == 1)) {
            y = c == null ? b.add1(OpRegistry.DENSE, Attributes.of("activation", "none"), n.getName(), a, w)
                    : b.add1(OpRegistry.DENSE, Attributes.of("activation", "none"), n.getName(), a, w, c);
        } else {
            Value wt = intAttr(n, "transB", 0) == 1 ? b.add1(OpRegistry.TRANSPOSE, Attributes.of("perm", new long[] {1, 0}), n.getName(), w) : w;
            y = b.add1(OpRegistry.MATMUL, Attributes.EMPTY, n.getName(), a, wt);
            if (c != null) {
                y = b.add1(OpRegistry.ADD, Attributes.EMPTY, n.getName(), y, c);
            }
        }
        in.define(n.getOutput(0), y);
    }

    private static void reduce(Onnx.NodeProto n, OnnxImporter in, String op, long[] axes) {
        in.define(n.getOutput(0), in.builder().add1(op, Attributes.of("axes", axes, "keepdims", intAttr(n, "keepdims", 1)), n.getName(),
                in.value(n.getInput(0))));
    }

    static long[] longs(TensorData data, String name) {
        if (data == null || data.dtype() != DType.INT64) {
            throw KilnException.of(ErrorCode.UNSUPPORTED_OP, "input '%s' must be a constant int64 tensor", name);
        }
        ByteBuffer bytes = data.bytes().order(ByteOrder.LITTLE_ENDIAN);
        long[] out = new long[(int) data.elementCount()];
        for (int i = 0; i < out.length; i++) {
            out[i] = bytes.getLong(i * 8);
        }
        return out;
    }

    static long intAttr(Onnx.NodeProto node, String name, long defaultValue) {
        for (Onnx.AttributeProto a : node.getAttributeList()) {
            if (a.getName().equals(name)) {
                return a.getI();
            }
        }
        return defaultValue;
    }

    static float floatAttr(Onnx.NodeProto node, String name, float defaultValue) {
        for (Onnx.AttributeProto a : node.getAttributeList()) {
            if (a.getName().equals(name)) {
                return a.getF();
            }
        }
        return defaultValue;
    }

    static String stringAttr(Onnx.NodeProto node, String name, String defaultValue) {
        for (Onnx.AttributeProto a : node.getAttributeList()) {
            if (a.getName().equals(name)) {
                return a.getS().toStringUtf8();
            }
        }
        return defaultValue;
    }

    static long[] intsAttr(Onnx.NodeProto node, String name) {
        for (Onnx.AttributeProto a : node.getAttributeList()) {
            if (a.getName().equals(name)) {
                return a.getIntsList().stream().mapToLong(Long::longValue).toArray();
            }
        }
        return null;
    }
}
