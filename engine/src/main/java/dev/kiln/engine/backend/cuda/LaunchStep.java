package dev.kiln.engine.backend.cuda;

import dev.kiln.engine.KilnException;

/** A launch of one of Kiln's kernels: fixed arguments set once, batch-dependent ones ({@link Lin}) set per run. */
final class LaunchStep implements Step {
    private final String node;
    private final CudaApi.Launch launch;
    private final Lin threads;
    private final int[] linArgs;
    private final Lin[] linValues;

    LaunchStep(String node, CudaApi.Launch launch, Lin threads, int[] linArgs, Lin[] linValues) {
        this.node = node;
        this.launch = launch;
        this.threads = threads;
        this.linArgs = linArgs;
        this.linValues = linValues;
    }

    @Override
    public void run(long batch, long stream) {
        long n = threads.at(batch);
        if (n == 0) {
            return;
        }
        for (int i = 0; i < linArgs.length; i++) {
            launch.set(linArgs[i], linValues[i].at(batch));
        }
        try {
            launch.launch(n, stream);
        } catch (KilnException e) {
            throw new KilnException(e.code(), "Node " + node + ": " + e.getMessage(), e);
        }
    }

    @Override
    public String node() {
        return node;
    }
}
