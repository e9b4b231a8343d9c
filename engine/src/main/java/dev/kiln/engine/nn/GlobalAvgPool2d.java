package dev.kiln.engine.nn;

import dev.kiln.engine.tensor.Tensor;

/** Averages each channel over H and W: {@code [N, C, H, W] -> [N, C, 1, 1]} (PyTorch's {@code adaptive_avg_pool2d(x, 1)}). */
public class GlobalAvgPool2d extends UnaryBlock {
    @Override
    protected Tensor forwardInternal(Tensor x) {
        return x.mean(true, 2, 3);
    }
}
