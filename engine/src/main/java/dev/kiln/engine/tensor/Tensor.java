package dev.kiln.engine.tensor;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;
import dev.kiln.engine.ir.Attributes;
import dev.kiln.engine.ops.OpRegistry;
import dev.kiln.engine.tensor.eager.EagerEngine;

import java.util.Arrays;
import java.util.List;

/**
 * Kiln's tensor API, the one that block code is written against. The same code runs eagerly (each op computes at
 * once on ND4J, values readable, debuggable) or symbolically while a block is traced (each op records a graph node;
 * reading a value fails). Every op returns a new tensor; the in-place variants ({@code addi}, {@code assign}, ...)
 * update this handle, and are functionalized when traced.
 */
public abstract class Tensor {
    /** The engine that runs this tensor's ops. */
    protected abstract TensorEngine engine();

    public abstract Shape shape();

    public DType dtype() {
        return DType.FLOAT32;
    }

    /** True while tracing: the tensor stands for a value the compiled graph will compute. */
    public abstract boolean isSymbolic();

    /** Replaces this handle's contents with {@code result} (same shape): the basis of the in-place ops. */
    protected abstract void rebind(Tensor result, String opName);

    /** In-place ops keep the shape (as in PyTorch): fails naming the op and both shapes otherwise. */
    protected final void requireSameShape(Tensor result, String opName) {
        if (!result.shape().equals(shape())) {
            throw KilnException.of(ErrorCode.SHAPE_MISMATCH,
                    CallScope.locate("%s would change the shape of the tensor from %s to %s; in-place ops keep the shape"),
                    opName, shape(), result.shape());
        }
    }

    /** The values, row-major. Fails on a symbolic tensor. */
    public abstract float[] toFloatArray();

    /** The values as host data. Fails on a symbolic tensor. */
    public abstract TensorData toData();

    /** An eager tensor holding {@code data}. */
    public static Tensor of(TensorData data) {
        return EagerEngine.INSTANCE.constant(data);
    }

    public static Tensor of(long[] shape, float[] values) {
        return of(TensorData.ofFloats(shape, values));
    }

    /** The single value of a one-element tensor. Fails on a symbolic tensor. */
    public float item() {
        float[] values = toFloatArray();
        if (values.length != 1) {
            throw KilnException.of(ErrorCode.SHAPE_MISMATCH, CallScope.locate("item() needs a one-element tensor but the shape is %s"), shape());
        }
        return values[0];
    }

    /** The element at {@code index} (one coordinate per axis). Fails on a symbolic tensor. */
    public float getFloat(long... index) {
        Shape s = shape();
        if (index.length != s.rank()) {
            throw KilnException.of(ErrorCode.SHAPE_MISMATCH, CallScope.locate("getFloat needs %d coordinates for shape %s but got %d"),
                    s.rank(), s, index.length);
        }
        float[] values = toFloatArray();
        long flat = 0;
        for (int i = 0; i < index.length; i++) {
            flat = flat * s.dim(i).size() + index[i];
        }
        return values[(int) flat];
    }

    /** True when every element is non-zero; for branching in eager code. Fails on a symbolic tensor. */
    public boolean all() {
        for (float v : toFloatArray()) {
            if (v == 0f) {
                return false;
            }
        }
        return true;
    }

    /** True when some element is non-zero; for branching in eager code. Fails on a symbolic tensor. */
    public boolean any() {
        for (float v : toFloatArray()) {
            if (v != 0f) {
                return true;
            }
        }
        return false;
    }

    // ---- dispatch ----------------------------------------------------------------------------------------------

    private static TensorEngine engineOf(List<Tensor> inputs) {
        for (Tensor t : inputs) {
            if (t.isSymbolic()) {
                return t.engine();
            }
        }
        return inputs.get(0).engine();
    }

    protected static List<Tensor> call(String op, Attributes attributes, List<Tensor> inputs) {
        return engineOf(inputs).apply(op, attributes, inputs);
    }

    protected static Tensor call1(String op, Attributes attributes, Tensor... inputs) {
        return call(op, attributes, List.of(inputs)).get(0);
    }

    private Tensor scalar(float value) {
        return engine().constant(TensorData.scalar(value));
    }

    // ---- elementwise -------------------------------------------------------------------------------------------

    public Tensor add(Tensor other) {
        return call1(OpRegistry.ADD, Attributes.EMPTY, this, other);
    }

    public Tensor add(float value) {
        return add(scalar(value));
    }

    public Tensor sub(Tensor other) {
        return call1(OpRegistry.SUB, Attributes.EMPTY, this, other);
    }

    public Tensor sub(float value) {
        return sub(scalar(value));
    }

    public Tensor mul(Tensor other) {
        return call1(OpRegistry.MUL, Attributes.EMPTY, this, other);
    }

    public Tensor mul(float value) {
        return mul(scalar(value));
    }

    public Tensor div(Tensor other) {
        return call1(OpRegistry.DIV, Attributes.EMPTY, this, other);
    }

    public Tensor div(float value) {
        return div(scalar(value));
    }

    public Tensor pow(Tensor exponent) {
        return call1(OpRegistry.POW, Attributes.EMPTY, this, exponent);
    }

    public Tensor pow(float exponent) {
        return pow(scalar(exponent));
    }

    public Tensor neg() {
        return call1(OpRegistry.NEG, Attributes.EMPTY, this);
    }

    public Tensor exp() {
        return call1(OpRegistry.EXP, Attributes.EMPTY, this);
    }

    public Tensor log() {
        return call1(OpRegistry.LOG, Attributes.EMPTY, this);
    }

    public Tensor sqrt() {
        return call1(OpRegistry.SQRT, Attributes.EMPTY, this);
    }

    public Tensor erf() {
        return call1(OpRegistry.ERF, Attributes.EMPTY, this);
    }

    public Tensor relu() {
        return call1("relu", Attributes.EMPTY, this);
    }

    public Tensor sigmoid() {
        return call1("sigmoid", Attributes.EMPTY, this);
    }

    public Tensor tanh() {
        return call1("tanh", Attributes.EMPTY, this);
    }

    /** Exact (erf-based) GELU, PyTorch's default. */
    public Tensor gelu() {
        return call1("gelu", Attributes.EMPTY, this);
    }

    public Tensor softmax(int axis) {
        return call1(OpRegistry.SOFTMAX, Attributes.of("axis", axis), this);
    }

    // ---- linear algebra and layout -----------------------------------------------------------------------------

    /** Matrix product of the last two axes; leading axes broadcast (batched matmul). */
    public Tensor matmul(Tensor other) {
        return call1(OpRegistry.MATMUL, Attributes.EMPTY, this, other);
    }

    /** New shape, same elements (row-major). 0 copies this tensor's dimension at that position; -1 is inferred. */
    public Tensor reshape(long... sizes) {
        return call1(OpRegistry.RESHAPE, Attributes.of("shape", sizes.clone()), this);
    }

    /**
     * New shape given as dimensions, which may be symbolic (for example {@code x.shape().dim(0)} while tracing): a
     * symbolic dimension equal to this tensor's at the same position is kept, any other is inferred.
     */
    public Tensor reshape(Dim... dims) {
        Shape current = shape();
        long[] sizes = new long[dims.length];
        for (int i = 0; i < dims.length; i++) {
            Dim d = dims[i];
            if (d.isConcrete()) {
                sizes[i] = d.size();
            } else if (i < current.rank() && current.dim(i).equals(d)) {
                sizes[i] = 0;
            } else {
                sizes[i] = -1;
            }
        }
        return reshape(sizes);
    }

    /** Permutes axes: output axis i is input axis {@code perm[i]}. */
    public Tensor transpose(int... perm) {
        return call1(OpRegistry.TRANSPOSE, Attributes.of("perm", perm), this);
    }

    /** Swaps the last two axes. */
    public Tensor transpose() {
        int rank = shape().rank();
        if (rank < 2) {
            throw KilnException.of(ErrorCode.SHAPE_MISMATCH, CallScope.locate("transpose() needs rank >= 2 but the shape is %s"), shape());
        }
        int[] perm = new int[rank];
        for (int i = 0; i < rank; i++) {
            perm[i] = i;
        }
        perm[rank - 2] = rank - 1;
        perm[rank - 1] = rank - 2;
        return transpose(perm);
    }

    public static Tensor concat(int axis, Tensor... tensors) {
        return call(OpRegistry.CONCAT, Attributes.of("axis", axis), List.of(tensors)).get(0);
    }

    /** Cuts along {@code axis} into pieces of the given sizes. */
    public List<Tensor> split(int axis, long... sizes) {
        return call(OpRegistry.SPLIT, Attributes.of("axis", axis, "sizes", sizes.clone()), List.of(this));
    }

    /** Cuts along {@code axis} into {@code parts} equal pieces. */
    public List<Tensor> chunk(int axis, int parts) {
        long size = shape().dim(axis).size();
        if (parts <= 0 || size % parts != 0) {
            throw KilnException.of(ErrorCode.SHAPE_MISMATCH, CallScope.locate("chunk: axis %d of %s does not divide into %d parts"), axis, shape(), parts);
        }
        long[] sizes = new long[parts];
        Arrays.fill(sizes, size / parts);
        return split(axis, sizes);
    }

    public Tensor mean(boolean keepDims, int... axes) {
        return call1(OpRegistry.REDUCE_MEAN, Attributes.of("axes", axes, "keepdims", keepDims ? 1 : 0), this);
    }

    public Tensor sum(boolean keepDims, int... axes) {
        return call1(OpRegistry.REDUCE_SUM, Attributes.of("axes", axes, "keepdims", keepDims ? 1 : 0), this);
    }

    /**
     * 2-D convolution of NCHW input with {@code weight [M, C/groups, kH, kW]} and an optional {@code bias [M]};
     * {@code pads} are [top, left, bottom, right].
     */
    public Tensor conv2d(Tensor weight, Tensor bias, long[] strides, long[] pads, long[] dilations, int groups) {
        Attributes attrs = Attributes.of("strides", strides.clone(), "pads", pads.clone(), "dilations", dilations.clone(), "groups", groups);
        return bias == null ? call1(OpRegistry.CONV2D, attrs, this, weight) : call1(OpRegistry.CONV2D, attrs, this, weight, bias);
    }

    /** 2-D max pooling of NCHW input; {@code pads} are [top, left, bottom, right]. */
    public Tensor maxPool2d(long[] kernel, long[] strides, long[] pads) {
        return call1(OpRegistry.MAX_POOL2D, Attributes.of("kernel", kernel.clone(), "strides", strides.clone(), "pads", pads.clone()), this);
    }

    /**
     * 2-D average pooling of NCHW input; {@code pads} are [top, left, bottom, right]; with {@code countIncludePad}
     * padded positions count in each window's divisor (PyTorch's default), without it only positions inside do.
     */
    public Tensor avgPool2d(long[] kernel, long[] strides, long[] pads, boolean countIncludePad) {
        return call1(OpRegistry.AVG_POOL2D, Attributes.of("kernel", kernel.clone(), "strides", strides.clone(), "pads", pads.clone(),
                "count_include_pad", countIncludePad ? 1 : 0), this);
    }

    /**
     * Pads every axis: {@code pads} holds the amounts before each axis, then after each axis (ONNX's layout);
     * {@code mode} is {@code constant} (filled with {@code value}), {@code reflect} or {@code edge}.
     */
    public Tensor pad(long[] pads, String mode, float value) {
        return call1(OpRegistry.PAD, Attributes.of("pads", pads.clone(), "mode", mode, "value", (double) value), this);
    }

    /**
     * Rows of this table ({@code [V, d...]}) picked by {@code indices} (whole numbers held as float32), giving
     * {@code [indices..., d...]}: an embedding lookup.
     */
    public Tensor gather(Tensor indices) {
        return call1(OpRegistry.GATHER, Attributes.EMPTY, this, indices);
    }

    // ---- in place (functionalized when traced) ----------------------------------------------------------------

    public Tensor addi(Tensor other) {
        rebind(add(other), "addi");
        return this;
    }

    public Tensor addi(float value) {
        rebind(add(value), "addi");
        return this;
    }

    public Tensor subi(Tensor other) {
        rebind(sub(other), "subi");
        return this;
    }

    public Tensor muli(Tensor other) {
        rebind(mul(other), "muli");
        return this;
    }

    public Tensor muli(float value) {
        rebind(mul(value), "muli");
        return this;
    }

    public Tensor divi(Tensor other) {
        rebind(div(other), "divi");
        return this;
    }

    /** Copies {@code source} (broadcast to this shape) into this tensor. */
    public Tensor assign(Tensor source) {
        rebind(call1(OpRegistry.EXPAND_LIKE, Attributes.EMPTY, source, this), "assign");
        return this;
    }

    /** Sets every element to {@code value}. */
    public Tensor assign(float value) {
        return assign(scalar(value));
    }

}
