package dev.kiln.engine.nn;

import dev.kiln.engine.tensor.Tensor;

/**
 * 2-D average pooling (PyTorch's {@code AvgPool2d(kernel, stride, padding, count_include_pad=True)}; stride defaults
 * to the kernel size, and padded positions count in the divisor unless {@code countIncludePad} is false).
 */
public class AvgPool2d extends UnaryBlock {
    private final long kernel;
    private final long stride;
    private final long padding;
    private final boolean countIncludePad;

    public AvgPool2d(long kernel) {
        this(kernel, kernel, 0, true);
    }

    public AvgPool2d(long kernel, long stride, long padding, boolean countIncludePad) {
        this.kernel = kernel;
        this.stride = stride;
        this.padding = padding;
        this.countIncludePad = countIncludePad;
    }

    @Override
    protected Tensor forwardInternal(Tensor x) {
        return x.avgPool2d(new long[] {kernel, kernel}, new long[] {stride, stride}, new long[] {padding, padding, padding, padding},
                countIncludePad);
    }
}
