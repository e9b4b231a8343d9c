package dev.kiln.format.onnx;

import com.google.protobuf.CodedInputStream;
import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;
import dev.kiln.engine.ir.Graph;
import dev.kiln.engine.ir.GraphBuilder;
import dev.kiln.engine.ir.TensorType;
import dev.kiln.engine.ir.Value;
import dev.kiln.engine.tensor.DType;
import dev.kiln.engine.tensor.Dim;
import dev.kiln.engine.tensor.Shape;
import dev.kiln.engine.tensor.TensorData;
import dev.kiln.format.onnx.proto.Onnx;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * Reads an ONNX {@code ModelProto} (as {@code torch.onnx.export} writes it, opsets 13–17, weights inline or in external
 * data files) into Kiln's graph IR, which then goes through the usual passes, validation and export. The first
 * dimension named by a {@code dim_param} becomes Kiln's symbolic batch. Every node whose op (or attribute, or dtype)
 * is not supported is listed in one error, with what is supported; nothing partial is produced.
 */
public final class OnnxImporter {
    public static final int MIN_OPSET = 13;
    public static final int MAX_OPSET = 17;

    private final Path file;
    private final GraphBuilder builder = new GraphBuilder();
    private final Map<String, Value> values = new LinkedHashMap<>();
    private final Map<String, TensorData> initializers = new LinkedHashMap<>();
    private final Map<String, Value> parameters = new LinkedHashMap<>();
    private final Map<String, ShapeValue> shapeValues = new LinkedHashMap<>();
    private String batchName;
    private int opset;

    private OnnxImporter(Path file) {
        this.file = file;
    }

    /** Imports the model at {@code file}; external data files are resolved next to it. */
    /** The ONNX ops the importer converts (each may still refuse attributes it cannot honour, naming them). */
    public static java.util.Set<String> supportedOps() {
        return java.util.Collections.unmodifiableSet(OnnxOps.supported());
    }

    public static Graph importModel(Path file) {
        Onnx.ModelProto model;
        try (InputStream in = Files.newInputStream(file)) {
            CodedInputStream coded = CodedInputStream.newInstance(in);
            coded.setSizeLimit(Integer.MAX_VALUE);
            model = Onnx.ModelProto.parseFrom(coded);
        } catch (com.google.protobuf.InvalidProtocolBufferException e) {
            throw new KilnException(ErrorCode.CORRUPT_MODEL, "Cannot read ONNX model " + file + ": not a valid ModelProto (" + e.getMessage() + ")", e);
        } catch (IOException e) {
            throw new KilnException(ErrorCode.IO_ERROR, "Cannot read ONNX model " + file + ": " + e.getMessage(), e);
        }
        return new OnnxImporter(file).convert(model);
    }

    private Graph convert(Onnx.ModelProto model) {
        opset = -1;
        for (Onnx.OperatorSetIdProto id : model.getOpsetImportList()) {
            if (id.getDomain().isEmpty() || id.getDomain().equals("ai.onnx")) {
                opset = (int) id.getVersion();
            }
        }
        if (opset < MIN_OPSET || opset > MAX_OPSET) {
            throw KilnException.of(ErrorCode.UNSUPPORTED_VERSION, "ONNX model %s uses opset %d; Kiln imports opsets %d to %d",
                    file, opset, MIN_OPSET, MAX_OPSET);
        }
        Onnx.GraphProto graph = model.getGraph();
        for (Onnx.TensorProto t : graph.getInitializerList()) {
            initializers.put(t.getName(), tensor(t));
        }
        for (Onnx.ValueInfoProto input : graph.getInputList()) {
            if (!initializers.containsKey(input.getName())) {
                values.put(input.getName(), builder.input(input.getName(), type(input)));
            }
        }
        Set<String> integerInputs = new java.util.HashSet<>();
        for (Onnx.ValueInfoProto input : graph.getInputList()) {
            int elem = input.getType().getTensorType().getElemType();
            if (!initializers.containsKey(input.getName()) && elem != Onnx.TensorProto.DataType.FLOAT_VALUE) {
                integerInputs.add(input.getName());
            }
        }
        List<String> unsupported = new ArrayList<>();
        Set<String> constants = new java.util.HashSet<>(initializers.keySet());
        Context context = constants::contains;
        for (Onnx.NodeProto node : graph.getNodeList()) {
            if (node.getOpType().equals("Constant")) {
                constants.addAll(node.getOutputList());
            }
            String problem = OnnxOps.check(node, context);
            for (int i = 0; i < node.getInputCount() && problem == null; i++) {
                if (integerInputs.contains(node.getInput(i)) && !(node.getOpType().equals("Gather") && i == 1)) {
                    // Integer inputs travel as float32; only as Gather indices is that exact and checked.
                    problem = "reads integer input '" + node.getInput(i) + "', which Kiln carries as float32 and accepts only as Gather indices";
                }
            }
            if (problem != null) {
                unsupported.add(String.format("%s at node '%s' (opset %d)%s", node.getOpType(), node.getName(), opset, problem.isEmpty() ? "" : ": " + problem));
            }
        }
        if (!unsupported.isEmpty()) {
            throw KilnException.of(ErrorCode.UNSUPPORTED_OP, "ONNX model %s has %d unsupported node%s: %s. Supported ops: %s", file,
                    unsupported.size(), unsupported.size() == 1 ? "" : "s", String.join("; ", unsupported), String.join(", ", new TreeSet<>(OnnxOps.supported())));
        }
        for (Onnx.NodeProto node : graph.getNodeList()) {
            try {
                OnnxOps.convert(node, this);
            } catch (KilnException e) {
                throw new KilnException(e.code(), String.format("ONNX model %s, node '%s' (%s): %s", file, node.getName(), node.getOpType(), e.getMessage()), e);
            }
        }
        for (Onnx.ValueInfoProto output : graph.getOutputList()) {
            builder.output(output.getName(), value(output.getName()));
        }
        return builder.build();
    }

    /** What checks may ask before conversion: whether a value is known at import time. */
    interface Context {
        boolean isConstant(String name);
    }

    // ---- used by the op converters -------------------------------------------------------------------------------

    GraphBuilder builder() {
        return builder;
    }

    int opset() {
        return opset;
    }

    /** The IR value of an ONNX value name; initializers become parameters on first use. */
    Value value(String name) {
        Value v = values.get(name);
        if (v != null) {
            return v;
        }
        TensorData data = initializers.get(name);
        if (data != null) {
            if (data.dtype() != DType.FLOAT32) {
                throw KilnException.of(ErrorCode.UNSUPPORTED_OP, "initializer '%s' is %s; only float32 tensors can be computed with (int64 ones may only feed shapes)", name, data);
            }
            Value p = parameters.computeIfAbsent(name, n -> builder.parameter(n, data));
            values.put(name, p);
            return p;
        }
        throw KilnException.of(ErrorCode.CORRUPT_MODEL, "value '%s' is used before it is defined", name);
    }

    /** The data of a constant input (an initializer or a Constant node's output), or null. */
    TensorData constant(String name) {
        return initializers.get(name);
    }

    void define(String name, Value value) {
        values.put(name, value);
    }

    /**
     * An int64 value known at import time up to the symbolic batch: what {@code Shape}, {@code Gather},
     * {@code Unsqueeze}, {@code Concat} and arithmetic on them compute in exported PyTorch code ({@code b, s, d =
     * x.shape}). Such chains fold away at import; only the batch stays dynamic.
     */
    record ShapeValue(List<Dim> values, boolean scalar) { }

    /** The import-time value of an int64 tensor: a shape computation, or an int64 constant; null when unknown. */
    ShapeValue shapeValue(String name) {
        ShapeValue v = shapeValues.get(name);
        if (v != null) {
            return v;
        }
        TensorData data = initializers.get(name);
        if (data != null && data.dtype() == DType.INT64) {
            List<Dim> dims = new ArrayList<>();
            for (long x : OnnxOps.longs(data, name)) {
                dims.add(x >= 0 ? Dim.of(x) : null);
            }
            if (dims.contains(null)) {
                return null;
            }
            return new ShapeValue(dims, data.rank() == 0);
        }
        return null;
    }

    void defineShapeValue(String name, ShapeValue value) {
        shapeValues.put(name, value);
    }

    /** Whether {@code name} is a plain tensor the graph computes (not a folded shape value). */
    boolean hasValue(String name) {
        return values.containsKey(name) || (initializers.containsKey(name) && initializers.get(name).dtype() == DType.FLOAT32);
    }

    void defineConstant(String name, TensorData data) {
        initializers.put(name, data);
    }

    // ---- types and tensors ---------------------------------------------------------------------------------------

    private TensorType type(Onnx.ValueInfoProto info) {
        Onnx.TypeProto.Tensor tensor = info.getType().getTensorType();
        int elemType = tensor.getElemType();
        // Integer inputs (token ids for Gather/Embedding) are carried as float32, Kiln's one tensor type: exact up to
        // 2^24, and gather refuses any value that is not a whole number in range.
        if (elemType != Onnx.TensorProto.DataType.FLOAT_VALUE && elemType != Onnx.TensorProto.DataType.INT64_VALUE
                && elemType != Onnx.TensorProto.DataType.INT32_VALUE) {
            throw KilnException.of(ErrorCode.UNSUPPORTED_OP, "ONNX model %s: input '%s' has element type %d; Kiln imports float32 inputs "
                    + "(and int32/int64 inputs as float32 for index lookups)", file, info.getName(), elemType);
        }
        List<Dim> dims = new ArrayList<>();
        for (Onnx.TensorShapeProto.Dimension d : tensor.getShape().getDimList()) {
            if (d.hasDimValue()) {
                dims.add(Dim.of(d.getDimValue()));
            } else {
                String name = d.getDimParam();
                if (batchName == null) {
                    batchName = name;
                } else if (!batchName.equals(name)) {
                    throw KilnException.of(ErrorCode.UNSUPPORTED_OP, "ONNX model %s: input '%s' has a second dynamic dimension '%s' (the batch is '%s')",
                            file, info.getName(), name, batchName);
                }
                dims.add(Dim.symbol(Shape.BATCH));
            }
        }
        return TensorType.float32(Shape.of(dims));
    }

    /** A TensorProto's contents (raw, typed fields, or external data next to the model). */
    TensorData tensor(Onnx.TensorProto t) {
        long[] shape = t.getDimsList().stream().mapToLong(Long::longValue).toArray();
        long count = TensorData.elementCount(shape);
        switch (t.getDataType()) {
            case Onnx.TensorProto.DataType.FLOAT_VALUE: {
                ByteBuffer bytes = raw(t, count * 4);
                if (bytes == null) {
                    ByteBuffer b = ByteBuffer.allocate((int) count * 4).order(ByteOrder.LITTLE_ENDIAN);
                    t.getFloatDataList().forEach(b::putFloat);
                    bytes = b.flip();
                }
                return new TensorData(DType.FLOAT32, shape, bytes);
            }
            case Onnx.TensorProto.DataType.INT64_VALUE: {
                ByteBuffer bytes = raw(t, count * 8);
                if (bytes == null) {
                    ByteBuffer b = ByteBuffer.allocate((int) count * 8).order(ByteOrder.LITTLE_ENDIAN);
                    t.getInt64DataList().forEach(b::putLong);
                    bytes = b.flip();
                }
                return new TensorData(DType.INT64, shape, bytes);
            }
            default:
                throw KilnException.of(ErrorCode.UNSUPPORTED_OP, "ONNX model %s: tensor '%s' has data type %d; Kiln imports float32 and int64 tensors",
                        file, t.getName(), t.getDataType());
        }
    }

    private ByteBuffer raw(Onnx.TensorProto t, long bytes) {
        if (t.getDataLocation() == Onnx.TensorProto.DataLocation.EXTERNAL) {
            Map<String, String> info = new LinkedHashMap<>();
            t.getExternalDataList().forEach(e -> info.put(e.getKey(), e.getValue()));
            String location = info.get("location");
            if (location == null || location.contains("..") || Path.of(location).isAbsolute()) {
                throw KilnException.of(ErrorCode.CORRUPT_MODEL, "ONNX model %s: tensor '%s' has an invalid external data location '%s'", file, t.getName(), location);
            }
            Path data = file.resolveSibling(location);
            long offset = Long.parseLong(info.getOrDefault("offset", "0"));
            try (FileChannel channel = FileChannel.open(data, StandardOpenOption.READ)) {
                if (offset < 0 || offset + bytes > channel.size()) {
                    throw KilnException.of(ErrorCode.CORRUPT_MODEL, "ONNX model %s: tensor '%s' needs bytes [%d, %d) of %s, which has %d",
                            file, t.getName(), offset, offset + bytes, data, channel.size());
                }
                return channel.map(FileChannel.MapMode.READ_ONLY, offset, bytes).order(ByteOrder.LITTLE_ENDIAN);
            } catch (IOException e) {
                throw new KilnException(ErrorCode.IO_ERROR, "Cannot read external data " + data + " of ONNX model " + file + ": " + e.getMessage(), e);
            }
        }
        if (!t.hasRawData()) {
            return null;
        }
        if (t.getRawData().size() != bytes) {
            throw KilnException.of(ErrorCode.CORRUPT_MODEL, "ONNX model %s: tensor '%s' %s needs %d bytes, found %d",
                    file, t.getName(), t.getDimsList(), bytes, t.getRawData().size());
        }
        return t.getRawData().asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN);
    }
}
