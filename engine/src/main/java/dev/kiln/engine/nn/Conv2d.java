package dev.kiln.engine.nn;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;
import dev.kiln.engine.tensor.Shape;
import dev.kiln.engine.tensor.Tensor;

import java.util.List;

/**
 * 2-D convolution over NCHW input, as PyTorch's {@code Conv2d}: {@code weight [out, in/groups, k, k]}, {@code bias [out]},
 * symmetric padding. The input channel count is learned from the first input or from loaded weights unless given.
 */
public class Conv2d extends UnaryBlock {
    private final long outChannels;
    private final long kernel;
    private final long stride;
    private final long padding;
    private final long dilation;
    private final int groups;
    private final Parameter weight;
    private final Parameter bias;

    public Conv2d(long inChannels, long outChannels, long kernel) {
        this(inChannels, outChannels, kernel, 1, 0, 1, 1, true);
    }

    public Conv2d(long inChannels, long outChannels, long kernel, long stride, long padding, long dilation, int groups, boolean bias) {
        if (outChannels <= 0 || kernel <= 0 || stride <= 0 || padding < 0 || dilation <= 0 || groups <= 0 || outChannels % groups != 0
                || inChannels > 0 && inChannels % groups != 0) {
            throw KilnException.of(ErrorCode.INVALID_ARGUMENT, "Conv2d(in %d, out %d, kernel %d, stride %d, padding %d, dilation %d, groups %d) is invalid",
                    inChannels, outChannels, kernel, stride, padding, dilation, groups);
        }
        this.outChannels = outChannels;
        this.kernel = kernel;
        this.stride = stride;
        this.padding = padding;
        this.dilation = dilation;
        this.groups = groups;
        long fanIn = inChannels / groups * kernel * kernel;
        this.weight = addParameter("weight", new long[] {outChannels, inChannels / groups, kernel, kernel}, fanIn);
        this.bias = bias ? addParameter("bias", new long[] {outChannels}, fanIn) : null;
    }

    @Override
    protected void checkInputs(List<Tensor> inputs) {
        Shape x = inputs.get(0).shape();
        long in = weight.shape()[1] * groups;
        if (x.rank() != 4 || !x.dim(1).isConcrete() || x.dim(1).size() != in) {
            throw inputShapeError("[batch, " + in + ", H, W]", x);
        }
    }

    @Override
    protected Tensor forwardInternal(Tensor x) {
        long[] pads = {padding, padding, padding, padding};
        return x.conv2d(weight.value(), bias == null ? null : bias.value(), new long[] {stride, stride}, pads, new long[] {dilation, dilation}, groups);
    }
}
