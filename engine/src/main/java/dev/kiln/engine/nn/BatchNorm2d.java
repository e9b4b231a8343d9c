package dev.kiln.engine.nn;

import dev.kiln.engine.tensor.Tensor;

/**
 * Batch normalization over the channels of NCHW input, inference form: {@code (x - running_mean) /
 * sqrt(running_var + eps) * weight + bias}, parameters named as PyTorch's {@code BatchNorm2d} state_dict.
 */
public class BatchNorm2d extends UnaryBlock {
    private final long channels;
    private final float eps;
    private final Parameter weight;
    private final Parameter bias;
    private final Parameter runningMean;
    private final Parameter runningVar;

    public BatchNorm2d(long channels) {
        this(channels, 1e-5f);
    }

    public BatchNorm2d(long channels, float eps) {
        this.channels = channels;
        this.eps = eps;
        this.weight = addParameter("weight", new long[] {channels}, 0);
        this.bias = addParameter("bias", new long[] {channels}, 0);
        this.runningMean = addParameter("running_mean", new long[] {channels}, 0);
        this.runningVar = addParameter("running_var", new long[] {channels}, 0);
    }

    @Override
    protected Tensor forwardInternal(Tensor x) {
        long[] perChannel = {channels, 1, 1};
        Tensor centered = x.sub(runningMean.value().reshape(perChannel));
        Tensor scale = runningVar.value().reshape(perChannel).add(eps).sqrt();
        return centered.div(scale).mul(weight.value().reshape(perChannel)).add(bias.value().reshape(perChannel));
    }
}
