package dev.kiln.engine.tensor;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * An immutable tensor shape whose dimensions are concrete or symbolic ({@link Dim}). Kiln allows at most one symbol
 * (the batch) per shape, in at most one dimension, so every element count is {@code a * batch} or a constant.
 */
public final class Shape {
    public static final String BATCH = "batch";

    private final Dim[] dims;

    private Shape(Dim[] dims) {
        this.dims = dims;
        int symbolic = 0;
        for (Dim d : dims) {
            if (d.isSymbolic()) {
                symbolic++;
            }
        }
        if (symbolic > 1) {
            throw KilnException.of(ErrorCode.SHAPE_MISMATCH,
                    "Shape %s has more than one symbolic dimension; Kiln supports a single symbolic (batch) dimension", this);
        }
    }

    public static Shape of(long... sizes) {
        Dim[] dims = new Dim[sizes.length];
        for (int i = 0; i < sizes.length; i++) {
            dims[i] = Dim.of(sizes[i]);
        }
        return new Shape(dims);
    }

    public static Shape of(Dim... dims) {
        return new Shape(dims.clone());
    }

    public static Shape of(List<Dim> dims) {
        return new Shape(dims.toArray(new Dim[0]));
    }

    /** A shape whose first dimension is the symbolic batch and whose other dimensions are given. */
    public static Shape batched(long... rest) {
        Dim[] dims = new Dim[rest.length + 1];
        dims[0] = Dim.symbol(BATCH);
        for (int i = 0; i < rest.length; i++) {
            dims[i + 1] = Dim.of(rest[i]);
        }
        return new Shape(dims);
    }

    public static Shape scalar() {
        return new Shape(new Dim[0]);
    }

    public int rank() {
        return dims.length;
    }

    public Dim dim(int axis) {
        return dims[normalizeAxis(axis)];
    }

    public List<Dim> dims() {
        return List.of(dims);
    }

    /** Resolves a possibly negative axis; fails naming the shape when it is out of range. */
    public int normalizeAxis(int axis) {
        int a = axis < 0 ? axis + dims.length : axis;
        if (a < 0 || a >= dims.length) {
            throw KilnException.of(ErrorCode.SHAPE_MISMATCH, "Axis %d is out of range for shape %s (rank %d)", axis, this, dims.length);
        }
        return a;
    }

    public boolean isConcrete() {
        for (Dim d : dims) {
            if (d.isSymbolic()) {
                return false;
            }
        }
        return true;
    }

    /** The index of the symbolic dimension, or -1. */
    public int symbolicAxis() {
        for (int i = 0; i < dims.length; i++) {
            if (dims[i].isSymbolic()) {
                return i;
            }
        }
        return -1;
    }

    public long size(int axis, long batch) {
        return dims[axis].resolve(batch);
    }

    /** The number of elements once the batch symbol is bound. */
    public long elementCount(long batch) {
        long n = 1;
        for (Dim d : dims) {
            n *= d.resolve(batch);
        }
        return n;
    }

    /** The number of elements of a concrete shape. */
    public long elementCount() {
        long n = 1;
        for (Dim d : dims) {
            n *= d.size();
        }
        return n;
    }

    /** Concrete sizes once the batch symbol is bound. */
    public long[] resolve(long batch) {
        long[] out = new long[dims.length];
        for (int i = 0; i < dims.length; i++) {
            out[i] = dims[i].resolve(batch);
        }
        return out;
    }

    public long[] toLongArray() {
        long[] out = new long[dims.length];
        for (int i = 0; i < dims.length; i++) {
            out[i] = dims[i].size();
        }
        return out;
    }

    /**
     * Whether concrete {@code sizes} are an instance of this shape, and if so the value bound to the batch symbol
     * (1 when there is none); -1 when they do not match.
     */
    public long bind(long[] sizes) {
        if (sizes.length != dims.length) {
            return -1;
        }
        long batch = -2;
        for (int i = 0; i < dims.length; i++) {
            Dim d = dims[i];
            if (d.isConcrete()) {
                if (d.factor() != sizes[i]) {
                    return -1;
                }
            } else {
                if (sizes[i] % d.factor() != 0) {
                    return -1;
                }
                long b = sizes[i] / d.factor();
                if (batch != -2 && batch != b) {
                    return -1;
                }
                batch = b;
            }
        }
        return batch == -2 ? 1 : batch;
    }

    public Shape withDim(int axis, Dim dim) {
        Dim[] copy = dims.clone();
        copy[normalizeAxis(axis)] = dim;
        return new Shape(copy);
    }


    @Override
    public boolean equals(Object o) {
        return o instanceof Shape other && Arrays.equals(dims, other.dims);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(dims);
    }

    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder("[");
        for (int i = 0; i < dims.length; i++) {
            if (i > 0) {
                sb.append(", ");
            }
            sb.append(dims[i]);
        }
        return sb.append(']').toString();
    }

    /** Parses {@code [batch, 512]} as written by {@link #toString()}. */
    public static Shape parse(String text) {
        String t = text.trim();
        if (!t.startsWith("[") || !t.endsWith("]")) {
            throw KilnException.of(ErrorCode.INVALID_ARGUMENT, "Cannot parse shape '%s': expected [d0, d1, ...]", text);
        }
        String body = t.substring(1, t.length() - 1).trim();
        if (body.isEmpty()) {
            return scalar();
        }
        List<Dim> dims = new ArrayList<>();
        for (String part : body.split(",")) {
            dims.add(Dim.parse(part));
        }
        return of(dims);
    }

}
