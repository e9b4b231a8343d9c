package dev.kiln.engine.nn;

import dev.kiln.engine.tensor.Tensor;

/** Layer normalization over the last axis with learned {@code weight} and {@code bias} (PyTorch's {@code LayerNorm(d)}). */
public class LayerNorm extends UnaryBlock {
    private final float eps;
    private final Parameter weight;
    private final Parameter bias;

    public LayerNorm(long features) {
        this(features, 1e-5f);
    }

    public LayerNorm(long features, float eps) {
        this.eps = eps;
        this.weight = addFilledParameter("weight", new long[] {features}, 1f);
        this.bias = addFilledParameter("bias", new long[] {features}, 0f);
    }

    @Override
    protected Tensor forwardInternal(Tensor x) {
        Tensor centered = x.sub(x.mean(true, -1));
        Tensor variance = centered.mul(centered).mean(true, -1);
        return centered.div(variance.add(eps).sqrt()).mul(weight.value()).add(bias.value());
    }
}
