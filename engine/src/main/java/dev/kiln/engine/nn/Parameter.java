package dev.kiln.engine.nn;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;
import dev.kiln.engine.tensor.Tensor;
import dev.kiln.engine.tensor.TensorData;
import dev.kiln.engine.trace.Tracer;

import java.util.Arrays;
import java.util.Random;

/**
 * A named, learned tensor of a block. Its shape may be deferred until the first forward (a {@code Dense} learns its
 * input width then), or set when weights are loaded. Initialisation is deterministic: PyTorch's default uniform
 * bound {@code 1/sqrt(fanIn)}, from a generator seeded by the parameter's full name; or, where PyTorch initialises
 * with a constant (a norm's scale 1, shift 0, running mean 0 and variance 1), that constant.
 */
public final class Parameter {
    private final Block owner;
    private final String localName;
    private long[] shape;
    private long fanIn;
    private TensorData data;
    private Tensor eager;
    /** The initial value of every element instead of a random one (PyTorch's constant inits: norms' scales and statistics). */
    private final Float fill;

    Parameter(Block owner, String localName, long[] shape, long fanIn) {
        this(owner, localName, shape, fanIn, null);
    }

    Parameter(Block owner, String localName, long[] shape, long fanIn, Float fill) {
        this.owner = owner;
        this.localName = localName;
        this.shape = shape == null ? null : shape.clone();
        this.fanIn = fanIn;
        this.fill = fill;
    }

    /** The state_dict name, e.g. {@code 0.weight}. */
    public String name() {
        return owner.prefix() + localName;
    }

    /** The shape, or null while deferred. */
    public long[] shape() {
        return shape == null ? null : shape.clone();
    }

    public boolean isInitialized() {
        return data != null;
    }

    /** Fixes a deferred shape (called by the owning block once it knows its input). */
    void defineShape(long[] newShape, long newFanIn) {
        if (shape != null && !Arrays.equals(shape, newShape)) {
            throw KilnException.of(ErrorCode.SHAPE_MISMATCH, "Parameter '%s' has shape %s but the input needs %s",
                    name(), Arrays.toString(shape), Arrays.toString(newShape));
        }
        shape = newShape.clone();
        fanIn = newFanIn;
    }

    /** Sets the data, checking the shape; loaded weights replace any initial values. */
    public void set(TensorData value) {
        long[] actual = value.shape();
        if (shape != null && !Arrays.equals(shape, actual)) {
            throw KilnException.of(ErrorCode.PARAMETER_MISMATCH, "Parameter '%s' expects shape %s but the weights have %s",
                    name(), Arrays.toString(shape), Arrays.toString(actual));
        }
        owner.acceptLoaded(this, actual);
        shape = actual;
        data = value;
        eager = null;
    }

    /** The data, initialising it first if needed. */
    public TensorData data() {
        if (data == null) {
            initialize();
        }
        return data;
    }

    private void initialize() {
        if (shape == null) {
            throw KilnException.of(ErrorCode.PARAMETER_MISMATCH,
                    "Parameter '%s' has a deferred shape: run the model once or load weights before reading it", name());
        }
        float[] values = new float[Math.toIntExact(TensorData.elementCount(shape))];
        if (fill != null) {
            Arrays.fill(values, fill);
            data = TensorData.ofFloats(shape, values);
            return;
        }
        Random random = new Random(name().hashCode() * 0x9E3779B97F4A7C15L + owner.root().seed());
        double bound = 1.0 / Math.sqrt(Math.max(1, fanIn));
        for (int i = 0; i < values.length; i++) {
            values[i] = (float) ((random.nextDouble() * 2 - 1) * bound);
        }
        data = TensorData.ofFloats(shape, values);
    }

    /** The value to compute with: symbolic while tracing, otherwise an eager tensor (cached). */
    public Tensor value() {
        Tracer tracer = Tracer.active();
        if (tracer != null) {
            return tracer.parameter(name(), data());
        }
        if (eager == null) {
            eager = Tensor.of(data());
        }
        return eager;
    }

    @Override
    public String toString() {
        return name() + (shape == null ? "[deferred]" : Arrays.toString(shape));
    }
}
