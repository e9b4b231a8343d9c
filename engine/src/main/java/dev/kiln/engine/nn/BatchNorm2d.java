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
        // PyTorch's initial values: random ones made half the variances negative, so an unloaded model gave NaN.
        this.weight = addFilledParameter("weight", new long[] {channels}, 1f);
        this.bias = addFilledParameter("bias", new long[] {channels}, 0f);
        this.runningMean = addFilledParameter("running_mean", new long[] {channels}, 0f);
        this.runningVar = addFilledParameter("running_var", new long[] {channels}, 1f);
    }

    @Override
    protected Tensor forwardInternal(Tensor x) {
        long[] perChannel = {channels, 1, 1};
        Tensor centered = x.sub(runningMean.value().reshape(perChannel));
        Tensor scale = runningVar.value().reshape(perChannel).add(eps).sqrt();
        return centered.div(scale).mul(weight.value().reshape(perChannel)).add(bias.value().reshape(perChannel));
    }
}
