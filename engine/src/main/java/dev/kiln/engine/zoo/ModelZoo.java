package dev.kiln.engine.zoo;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;
import dev.kiln.engine.ir.Signature;
import dev.kiln.engine.nn.ActivationBlock;
import dev.kiln.engine.nn.Block;
import dev.kiln.engine.nn.Dense;
import dev.kiln.engine.nn.Sequential;
import dev.kiln.engine.ops.Activation;
import dev.kiln.engine.tensor.Shape;

import java.util.List;

/** Models Kiln knows by name ({@code zoo:NAME} on the command line), with their signatures. */
public final class ModelZoo {
    /** A named model: its block and the signature to compile it for. */
    public record Entry(String name, String description, Block block, Signature signature) { }

    private ModelZoo() {
    }

    public static List<String> names() {
        return List.of("seed-mlp", "small-cnn", "tiny-encoder");
    }

    public static Entry get(String name) {
        String n = name.startsWith("zoo:") ? name.substring(4) : name;
        if (n.equals("seed-mlp")) {
            return new Entry("seed-mlp", "the seed's MLP: 512 -> Dense(256, relu) -> Dense(128, relu) -> Dense(2)",
                    seedMlp(), Signature.builder().input("x", Shape.batched(512)).output("y").build());
        }
        if (n.equals("small-cnn")) {
            return new Entry("small-cnn", "conv 1->8, relu, max-pool, conv 8->16, batch-norm, relu, global average pool, linear 16->10, softmax",
                    new SmallCnn(), Signature.builder().input("image", Shape.batched(1, 28, 28)).output("probabilities").build());
        }
        if (n.equals("tiny-encoder")) {
            return new Entry("tiny-encoder", "one pre-norm transformer block (d 32, 4 heads, GELU feed-forward), mean-pooled",
                    new TinyEncoder(32, 4), Signature.builder().input("tokens", Shape.batched(16, 32)).output("pooled").build());
        }
        throw KilnException.of(ErrorCode.INVALID_ARGUMENT, "Unknown zoo model '%s'; known: %s", name, names());
    }

    /** The reference CNN of ../shared/models/cnn, written with the block API (parameter names as its state_dict). */
    public static final class SmallCnn extends dev.kiln.engine.nn.UnaryBlock {
        private final dev.kiln.engine.nn.Conv2d conv1 = addChild("conv1", new dev.kiln.engine.nn.Conv2d(1, 8, 3, 1, 1, 1, 1, true));
        private final dev.kiln.engine.nn.Conv2d conv2 = addChild("conv2", new dev.kiln.engine.nn.Conv2d(8, 16, 3));
        private final dev.kiln.engine.nn.BatchNorm2d bn = addChild("bn", new dev.kiln.engine.nn.BatchNorm2d(16));
        private final Dense fc = addChild("fc", new Dense(10, Activation.NONE, true, 16));

        @Override
        protected dev.kiln.engine.tensor.Tensor forwardInternal(dev.kiln.engine.tensor.Tensor x) {
            dev.kiln.engine.tensor.Tensor h = conv1.forward(x).relu().maxPool2d(new long[] {2, 2}, new long[] {2, 2}, new long[] {0, 0, 0, 0});
            h = bn.forward(conv2.forward(h)).relu();
            h = h.mean(true, 2, 3).reshape(0, -1);
            return fc.forward(h).softmax(1);
        }
    }

    /** The reference transformer block of ../shared/models/encoder, written with the block API. */
    public static final class TinyEncoder extends dev.kiln.engine.nn.UnaryBlock {
        private final long d;
        private final long heads;
        private final dev.kiln.engine.nn.LayerNorm ln1;
        private final Dense qkv;
        private final Dense proj;
        private final dev.kiln.engine.nn.LayerNorm ln2;
        private final Dense ff1;
        private final Dense ff2;

        public TinyEncoder(long d, long heads) {
            this.d = d;
            this.heads = heads;
            this.ln1 = addChild("ln1", new dev.kiln.engine.nn.LayerNorm(d));
            this.qkv = addChild("qkv", new Dense(3 * d, Activation.NONE, true, d));
            this.proj = addChild("proj", new Dense(d, Activation.NONE, true, d));
            this.ln2 = addChild("ln2", new dev.kiln.engine.nn.LayerNorm(d));
            this.ff1 = addChild("ff1", new Dense(4 * d, Activation.NONE, true, d));
            this.ff2 = addChild("ff2", new Dense(d, Activation.NONE, true, 4 * d));
        }

        @Override
        protected dev.kiln.engine.tensor.Tensor forwardInternal(dev.kiln.engine.tensor.Tensor x) {
            dev.kiln.engine.tensor.Dim b = x.shape().dim(0);
            dev.kiln.engine.tensor.Dim s = x.shape().dim(1);
            List<dev.kiln.engine.tensor.Tensor> qkvParts = qkv.forward(ln1.forward(x)).split(2, d, d, d);
            dev.kiln.engine.tensor.Dim h = dev.kiln.engine.tensor.Dim.of(heads);
            dev.kiln.engine.tensor.Dim dh = dev.kiln.engine.tensor.Dim.of(d / heads);
            dev.kiln.engine.tensor.Tensor q = qkvParts.get(0).reshape(b, s, h, dh).transpose(0, 2, 1, 3);
            dev.kiln.engine.tensor.Tensor k = qkvParts.get(1).reshape(b, s, h, dh).transpose(0, 2, 1, 3);
            dev.kiln.engine.tensor.Tensor v = qkvParts.get(2).reshape(b, s, h, dh).transpose(0, 2, 1, 3);
            dev.kiln.engine.tensor.Tensor attention = q.matmul(k.transpose()).div((float) Math.sqrt(d / heads)).softmax(-1);
            dev.kiln.engine.tensor.Tensor y = attention.matmul(v).transpose(0, 2, 1, 3).reshape(b, s, dev.kiln.engine.tensor.Dim.of(d));
            dev.kiln.engine.tensor.Tensor r = x.add(proj.forward(y));
            r = r.add(ff2.forward(ff1.forward(ln2.forward(r)).gelu()));
            return r.mean(false, 1);
        }
    }

    /**
     * The seed MLP, written as PyTorch's {@code nn.Sequential(Linear(512, 256), ReLU(), Linear(256, 128), ReLU(),
     * Linear(128, 2))} so that its parameters are named {@code 0.*, 2.*, 4.*} like that model's state_dict.
     */
    public static Sequential seedMlp() {
        return new Sequential().add(
                new Dense(256, Activation.NONE, true, 512), ActivationBlock.relu(),
                new Dense(128, Activation.NONE, true, 256), ActivationBlock.relu(),
                new Dense(2, Activation.NONE, true, 128));
    }
}
