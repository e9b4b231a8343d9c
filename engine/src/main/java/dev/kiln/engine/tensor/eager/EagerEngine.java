package dev.kiln.engine.tensor.eager;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;
import dev.kiln.engine.backend.gpu.Nd4jBackendGuard;
import dev.kiln.engine.ir.Attributes;
import dev.kiln.engine.ir.TensorType;
import dev.kiln.engine.ops.Activation;
import dev.kiln.engine.ops.DenseOp;
import dev.kiln.engine.ops.OpDef;
import dev.kiln.engine.ops.OpRegistry;
import dev.kiln.engine.tensor.CallScope;
import dev.kiln.engine.tensor.DType;
import dev.kiln.engine.tensor.Tensor;
import dev.kiln.engine.tensor.TensorData;
import dev.kiln.engine.tensor.TensorEngine;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.impl.transforms.custom.Pow;
import org.nd4j.linalg.api.ops.impl.transforms.custom.SoftMax;
import org.nd4j.linalg.api.ops.impl.transforms.pairwise.arithmetic.AddOp;
import org.nd4j.linalg.api.ops.impl.transforms.pairwise.arithmetic.DivOp;
import org.nd4j.linalg.api.ops.impl.transforms.pairwise.arithmetic.MulOp;
import org.nd4j.linalg.api.ops.impl.transforms.pairwise.arithmetic.SubOp;
import org.nd4j.linalg.api.ops.impl.transforms.strict.Erf;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.INDArrayIndex;
import org.nd4j.linalg.indexing.NDArrayIndex;
import org.nd4j.linalg.ops.transforms.Transforms;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Eager execution on ND4J: every op computes at once into a new array, with ND4J's own kernels. It is a second,
 * independent implementation of each op (the compiled path uses Kiln's kernels), which is what makes the
 * eager-versus-compiled validation meaningful. Types are checked through the op registry first, so shape errors read
 * the same in both modes and name the block.
 */
public final class EagerEngine implements TensorEngine {
    public static final EagerEngine INSTANCE = new EagerEngine();

    private EagerEngine() {
    }

    @Override
    public Tensor constant(TensorData data) {
        Nd4jBackendGuard.ensureUsable();
        if (data.dtype() != DType.FLOAT32) {
            throw KilnException.of(ErrorCode.UNSUPPORTED_OP, "Eager tensors are float32; got %s", data);
        }
        float[] values = data.toFloatArray();
        INDArray array = data.rank() == 0 ? Nd4j.scalar(values[0]) : Nd4j.create(values, data.shape(), 'c');
        return new EagerTensor(array);
    }

    @Override
    public List<Tensor> apply(String op, Attributes attributes, List<Tensor> inputs) {
        OpDef def = OpRegistry.get(op);
        List<TensorType> types = new ArrayList<>();
        INDArray[] in = new INDArray[inputs.size()];
        for (int i = 0; i < inputs.size(); i++) {
            Tensor t = inputs.get(i);
            if (!(t instanceof EagerTensor eager)) {
                throw KilnException.of(ErrorCode.TRACE_ERROR, CallScope.locate("%s mixes an eager tensor with a %s"), op, t.getClass().getSimpleName());
            }
            in[i] = eager.array();
            types.add(new TensorType(DType.FLOAT32, t.shape()));
        }
        List<TensorType> outTypes;
        try {
            outTypes = def.inferTypes(types, attributes);
        } catch (KilnException e) {
            throw new KilnException(e.code(), CallScope.locate(e.getMessage()), e);
        }
        List<INDArray> out = compute(op, attributes, in, outTypes);
        List<Tensor> result = new ArrayList<>(out.size());
        for (INDArray a : out) {
            result.add(new EagerTensor(a));
        }
        return result;
    }

    private static INDArray newArray(TensorType type) {
        return Nd4j.create(DataType.FLOAT, type.shape().toLongArray(), 'c');
    }

    private List<INDArray> compute(String op, Attributes attributes, INDArray[] in, List<TensorType> outTypes) {
        INDArray x = in.length == 0 ? null : in[0];
        switch (op) {
            case OpRegistry.ADD:
                return List.of(Nd4j.exec(new AddOp(in[0], in[1], newArray(outTypes.get(0))))[0]);
            case OpRegistry.SUB:
                return List.of(Nd4j.exec(new SubOp(in[0], in[1], newArray(outTypes.get(0))))[0]);
            case OpRegistry.MUL:
                return List.of(Nd4j.exec(new MulOp(in[0], in[1], newArray(outTypes.get(0))))[0]);
            case OpRegistry.DIV:
                return List.of(Nd4j.exec(new DivOp(in[0], in[1], newArray(outTypes.get(0))))[0]);
            case OpRegistry.POW:
                return List.of(Nd4j.exec(new Pow(broadcast(in[0], outTypes.get(0)), broadcast(in[1], outTypes.get(0))))[0]);
            case OpRegistry.EXP:
                return List.of(Transforms.exp(x, true));
            case OpRegistry.LOG:
                return List.of(Transforms.log(x, true));
            case OpRegistry.SQRT:
                return List.of(Transforms.sqrt(x, true));
            case OpRegistry.ERF:
                return List.of(Nd4j.exec(new Erf(x, newArray(outTypes.get(0)))));
            case OpRegistry.NEG:
                return List.of(x.neg());
            case OpRegistry.IDENTITY:
                return List.of(x.dup('c'));
            case "relu":
            case "sigmoid":
            case "tanh":
            case "gelu":
                return List.of(activation(Activation.fromName(op), x));
            case OpRegistry.SOFTMAX: {
                int axis = (int) attributes.getLong("axis", -1);
                axis = axis < 0 ? axis + x.rank() : axis;
                return List.of(Nd4j.exec(new SoftMax(x, newArray(outTypes.get(0)), axis))[0]);
            }
            case OpRegistry.MATMUL:
                return List.of(matmul(in[0], in[1], outTypes.get(0)));
            case OpRegistry.DENSE: {
                long in2 = x.size(x.rank() - 1);
                INDArray x2 = x.reshape('c', -1, in2);
                INDArray y = x2.mmul(in[1].transpose());
                if (in.length > 2) {
                    y.addiRowVector(in[2]);
                }
                y = activation(DenseOp.activation(attributes), y);
                return List.of(y.reshape('c', outTypes.get(0).shape().toLongArray()));
            }
            case OpRegistry.RESHAPE:
                return List.of(x.dup('c').reshape('c', outTypes.get(0).shape().toLongArray()));
            case OpRegistry.TRANSPOSE: {
                long[] perm = attributes.getLongs("perm");
                int[] p = new int[perm.length];
                for (int i = 0; i < perm.length; i++) {
                    p[i] = (int) (perm[i] < 0 ? perm[i] + x.rank() : perm[i]);
                }
                // A strided view, as PyTorch's transpose: ND4J's BLAS calls take transposed operands without a copy.
                return List.of(x.permute(p));
            }
            case OpRegistry.CONCAT: {
                int axis = (int) attributes.getLong("axis");
                axis = axis < 0 ? axis + x.rank() : axis;
                return List.of(in.length == 1 ? x.dup('c') : Nd4j.concat(axis, in));
            }
            case OpRegistry.SPLIT: {
                int axis = (int) attributes.getLong("axis");
                axis = axis < 0 ? axis + x.rank() : axis;
                List<INDArray> parts = new ArrayList<>();
                long start = 0;
                for (long size : attributes.getLongs("sizes")) {
                    INDArrayIndex[] index = new INDArrayIndex[x.rank()];
                    Arrays.fill(index, NDArrayIndex.all());
                    index[axis] = NDArrayIndex.interval(start, start + size);
                    parts.add(x.get(index).dup('c'));
                    start += size;
                }
                return parts;
            }
            case OpRegistry.REDUCE_MEAN:
            case OpRegistry.REDUCE_SUM: {
                long[] axes = attributes.getLongs("axes");
                int[] a = new int[axes.length];
                for (int i = 0; i < axes.length; i++) {
                    a[i] = (int) (axes[i] < 0 ? axes[i] + x.rank() : axes[i]);
                }
                boolean keep = attributes.getLong("keepdims", 1) != 0;
                INDArray r = op.equals(OpRegistry.REDUCE_MEAN) ? x.mean(keep, a) : x.sum(keep, a);
                return List.of(r.reshape('c', outTypes.get(0).shape().toLongArray()));
            }
            case OpRegistry.EXPAND_LIKE:
                return List.of(broadcast(in[0], outTypes.get(0)));
            default:
                // Ops without an ND4J counterpart (conv2d, max_pool2d) run their reference kernel on heap copies.
                return referenceKernel(op, attributes, in, outTypes);
        }
    }

    private static List<INDArray> referenceKernel(String op, Attributes attributes, INDArray[] in, List<TensorType> outTypes) {
        dev.kiln.engine.backend.Slot[] inputs = new dev.kiln.engine.backend.Slot[in.length];
        for (int i = 0; i < in.length; i++) {
            inputs[i] = new dev.kiln.engine.backend.Slot(java.nio.FloatBuffer.wrap(in[i].dup('c').data().asFloat()), 0,
                    new TensorType(DType.FLOAT32, dev.kiln.engine.tensor.Shape.of(in[i].shape())));
        }
        dev.kiln.engine.backend.Slot[] outputs = new dev.kiln.engine.backend.Slot[outTypes.size()];
        for (int i = 0; i < outputs.length; i++) {
            outputs[i] = new dev.kiln.engine.backend.Slot(java.nio.FloatBuffer.allocate((int) outTypes.get(i).shape().elementCount()), 0, outTypes.get(i));
        }
        OpRegistry.get(op).newKernel(inputs, outputs, attributes).run(1);
        List<INDArray> result = new ArrayList<>();
        for (int i = 0; i < outputs.length; i++) {
            result.add(Nd4j.create(outputs[i].buffer().array(), outTypes.get(i).shape().toLongArray(), 'c'));
        }
        return result;
    }

    private static INDArray broadcast(INDArray a, TensorType target) {
        long[] shape = target.shape().toLongArray();
        if (Arrays.equals(a.shape(), shape)) {
            return a.dup('c');
        }
        long[] padded = new long[shape.length];
        Arrays.fill(padded, 1);
        System.arraycopy(a.shape(), 0, padded, shape.length - a.rank(), a.rank());
        return a.reshape('c', padded).broadcast(shape);
    }

    private static INDArray activation(Activation activation, INDArray x) {
        switch (activation) {
            case NONE:
                return x;
            case RELU:
                return Transforms.relu(x, true);
            case SIGMOID:
                return Transforms.sigmoid(x, true);
            case TANH:
                return Transforms.tanh(x, true);
            case GELU: {
                // Exact GELU: 0.5 x (1 + erf(x / sqrt 2)), built from ND4J ops.
                INDArray erf = Nd4j.exec(new Erf(x.mul(0.7071067811865476)));
                return x.mul(erf.addi(1.0)).muli(0.5);
            }
            default:
                throw new IllegalStateException("unknown activation " + activation);
        }
    }

    private static INDArray matmul(INDArray a, INDArray b, TensorType outType) {
        long[] out = outType.shape().toLongArray();
        int rank = out.length;
        if (rank == 2) {
            return a.mmul(b);
        }
        long m = a.size(a.rank() - 2);
        long k = a.size(a.rank() - 1);
        long n = b.size(b.rank() - 1);
        long[] aShape = out.clone();
        aShape[rank - 2] = m;
        aShape[rank - 1] = k;
        long[] bShape = out.clone();
        bShape[rank - 2] = k;
        bShape[rank - 1] = n;
        INDArray a3 = broadcast(a, new TensorType(DType.FLOAT32, dev.kiln.engine.tensor.Shape.of(aShape))).reshape('c', -1, m, k);
        INDArray b3 = broadcast(b, new TensorType(DType.FLOAT32, dev.kiln.engine.tensor.Shape.of(bShape))).reshape('c', -1, k, n);
        INDArray c3 = Nd4j.create(DataType.FLOAT, new long[] {a3.size(0), m, n}, 'c');
        for (long i = 0; i < a3.size(0); i++) {
            INDArray ai = a3.get(NDArrayIndex.point(i), NDArrayIndex.all(), NDArrayIndex.all());
            INDArray bi = b3.get(NDArrayIndex.point(i), NDArrayIndex.all(), NDArrayIndex.all());
            c3.get(NDArrayIndex.point(i), NDArrayIndex.all(), NDArrayIndex.all()).assign(ai.mmul(bi));
        }
        return c3.reshape('c', out);
    }
}
