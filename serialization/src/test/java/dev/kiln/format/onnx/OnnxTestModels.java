package dev.kiln.format.onnx;

import dev.kiln.format.onnx.proto.Onnx;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/** Builders for the small ONNX models the importer tests write: inputs with a symbolic batch, tensors, attributes. */
final class OnnxTestModels {
    private OnnxTestModels() {
    }

    /** A float32 graph input {@code [N, dims...]} with N symbolic. */
    static Onnx.ValueInfoProto input(String name, long... dims) {
        Onnx.TensorShapeProto.Builder shape = Onnx.TensorShapeProto.newBuilder();
        shape.addDim(Onnx.TensorShapeProto.Dimension.newBuilder().setDimParam("N"));
        for (long d : dims) {
            shape.addDim(Onnx.TensorShapeProto.Dimension.newBuilder().setDimValue(d));
        }
        return Onnx.ValueInfoProto.newBuilder().setName(name)
                .setType(Onnx.TypeProto.newBuilder().setTensorType(Onnx.TypeProto.Tensor.newBuilder().setElemType(1).setShape(shape))).build();
    }

    static Onnx.TensorProto floats(String name, long[] dims, float... values) {
        ByteBuffer b = ByteBuffer.allocate(values.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        for (float v : values) {
            b.putFloat(v);
        }
        Onnx.TensorProto.Builder t = Onnx.TensorProto.newBuilder().setName(name).setDataType(1).setRawData(com.google.protobuf.ByteString.copyFrom(b.array()));
        for (long d : dims) {
            t.addDims(d);
        }
        return t.build();
    }

    static Onnx.TensorProto int64s(String name, long... values) {
        ByteBuffer b = ByteBuffer.allocate(values.length * 8).order(ByteOrder.LITTLE_ENDIAN);
        for (long v : values) {
            b.putLong(v);
        }
        return Onnx.TensorProto.newBuilder().setName(name).setDataType(7).addDims(values.length).setRawData(com.google.protobuf.ByteString.copyFrom(b.array())).build();
    }

    static Onnx.AttributeProto floatAttr(String name, float v) {
        return Onnx.AttributeProto.newBuilder().setName(name).setType(Onnx.AttributeProto.AttributeType.FLOAT).setF(v).build();
    }

    static Onnx.AttributeProto intAttr(String name, long v) {
        return Onnx.AttributeProto.newBuilder().setName(name).setType(Onnx.AttributeProto.AttributeType.INT).setI(v).build();
    }

    static Onnx.AttributeProto ints(String name, long... values) {
        Onnx.AttributeProto.Builder a = Onnx.AttributeProto.newBuilder().setName(name).setType(Onnx.AttributeProto.AttributeType.INTS);
        for (long v : values) {
            a.addInts(v);
        }
        return a.build();
    }

    static Onnx.AttributeProto string(String name, String value) {
        return Onnx.AttributeProto.newBuilder().setName(name).setType(Onnx.AttributeProto.AttributeType.STRING)
                .setS(com.google.protobuf.ByteString.copyFromUtf8(value)).build();
    }
}
