package dev.kiln.engine.exec;

import dev.kiln.engine.nn.Block;
import dev.kiln.engine.nn.Dense;
import dev.kiln.engine.nn.Dropout;
import dev.kiln.engine.nn.LambdaBlock;
import dev.kiln.engine.nn.Sequential;
import dev.kiln.engine.nn.Softmax;
import dev.kiln.engine.nn.UnaryBlock;
import dev.kiln.engine.ops.Activation;
import dev.kiln.engine.tensor.Tensor;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/**
 * Seeded random models built from the block API: stacks of dense layers with random widths, activations and bias,
 * residual blocks, layer-norm arithmetic, softmax, reshape/transpose shuffles, split/concat, batched-matmul
 * attention, captured constants and dropout. The generator keeps a description for failure messages.
 */
final class RandomModels {
    record Model(Block block, long inputWidth, String description) { }

    private RandomModels() {
    }

    static Model create(long seed) {
        Random random = new Random(seed);
        long width = 1 + random.nextInt(48);
        long input = width;
        Sequential net = new Sequential();
        List<String> layers = new ArrayList<>();
        int depth = 1 + random.nextInt(6);
        for (int i = 0; i < depth; i++) {
            int kind = random.nextInt(10);
            switch (kind) {
                case 0, 1, 2 -> {
                    long out = 1 + random.nextInt(64);
                    Activation act = Activation.values()[random.nextInt(Activation.values().length)];
                    boolean bias = random.nextInt(4) != 0;
                    net.add(new Dense(out, act, bias));
                    layers.add("dense(" + out + "," + act + (bias ? "" : ",nobias") + ")");
                    width = out;
                }
                case 3 -> {
                    Activation act = Activation.values()[random.nextInt(Activation.values().length)];
                    net.add(new Residual(new Dense(width, act)));
                    layers.add("residual(dense(" + width + "," + act + "))");
                }
                case 4 -> {
                    net.add(new LambdaBlock("layer-norm", RandomModels::layerNorm));
                    layers.add("layer-norm");
                }
                case 5 -> {
                    net.add(new Softmax(-1));
                    layers.add("softmax");
                }
                case 6 -> {
                    if (width % 2 == 0) {
                        long half = width / 2;
                        net.add(new LambdaBlock("shuffle", x -> x.reshape(0, 2, half).transpose(0, 2, 1).reshape(0, -1)));
                        layers.add("shuffle");
                    } else {
                        net.add(new Dropout(0.5));
                        layers.add("dropout");
                    }
                }
                case 7 -> {
                    if (width >= 2) {
                        long first = 1 + random.nextInt((int) width - 1);
                        net.add(new LambdaBlock("split-concat", x -> {
                            List<Tensor> parts = x.split(-1, first, x.shape().dim(-1).size() - first);
                            return Tensor.concat(-1, parts.get(1).tanh(), parts.get(0).sigmoid());
                        }));
                        layers.add("split-concat(" + first + ")");
                    }
                }
                case 8 -> {
                    long heads = width % 4 == 0 ? 4 : width % 2 == 0 ? 2 : 1;
                    long d = width / heads;
                    net.add(new LambdaBlock("attention", x -> {
                        Tensor q = x.reshape(0, heads, d);
                        Tensor scores = q.matmul(q.transpose(0, 2, 1)).div((float) Math.sqrt(d)).softmax(-1);
                        return scores.matmul(q).reshape(0, -1);
                    }));
                    layers.add("attention(" + heads + "x" + d + ")");
                }
                default -> {
                    float[] scale = new float[(int) width];
                    for (int j = 0; j < scale.length; j++) {
                        scale[j] = (float) (0.5 + random.nextDouble());
                    }
                    Tensor constant = Tensor.of(new long[] {width}, scale);
                    net.add(new LambdaBlock("scale-log", x -> x.mul(constant).mul(x).add(1f).log().add(x.tanh().exp().mul(0.5f)).sub(x.mul(1f))));
                    layers.add("scale-log");
                }
            }
        }
        net.setSeed(seed);
        return new Model(net, input, "input " + input + " -> " + String.join(" -> ", layers));
    }

    static Tensor layerNorm(Tensor x) {
        Tensor mean = x.mean(true, -1);
        Tensor centered = x.sub(mean);
        Tensor variance = centered.pow(2f).mean(true, -1);
        return centered.div(variance.add(1e-5f).sqrt());
    }

    /** x + f(x). */
    static final class Residual extends UnaryBlock {
        private final Block inner;

        Residual(Block inner) {
            this.inner = addChild("inner", inner);
        }

        @Override
        protected Tensor forwardInternal(Tensor x) {
            return x.add(inner.forward(x));
        }
    }
}
