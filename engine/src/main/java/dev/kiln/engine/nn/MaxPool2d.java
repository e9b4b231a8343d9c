package dev.kiln.engine.nn;

import dev.kiln.engine.tensor.Tensor;

/** 2-D max pooling (PyTorch's {@code MaxPool2d(kernel, stride)}; stride defaults to the kernel size). */
public class MaxPool2d extends UnaryBlock {
    private final long kernel;
    private final long stride;
    private final long padding;

    public MaxPool2d(long kernel) {
        this(kernel, kernel, 0);
    }

    public MaxPool2d(long kernel, long stride, long padding) {
        this.kernel = kernel;
        this.stride = stride;
        this.padding = padding;
    }

    @Override
    protected Tensor forwardInternal(Tensor x) {
        return x.maxPool2d(new long[] {kernel, kernel}, new long[] {stride, stride}, new long[] {padding, padding, padding, padding});
    }
}
