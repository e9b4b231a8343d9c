package dev.kiln.engine.nn;

import dev.kiln.engine.tensor.Tensor;

/**
 * A lookup table of {@code numEmbeddings} vectors of {@code dim} values (PyTorch's {@code Embedding}, parameter
 * {@code weight [numEmbeddings, dim]}): input {@code [batch, ...]} of token ids, output {@code [batch, ..., dim]}.
 * Kiln's tensors are float32, so ids arrive as whole float32 values (exact up to 2^24, far beyond any vocabulary);
 * an id that is not a whole number in range fails the call naming it and its position. Initial values are uniform in
 * [-1, 1] (PyTorch draws N(0, 1)); load trained weights with {@code loadParameters}.
 */
public class Embedding extends UnaryBlock {
    private final Parameter weight;

    public Embedding(long numEmbeddings, long dim) {
        this.weight = addParameter("weight", new long[] {numEmbeddings, dim}, 1);
    }

    @Override
    protected Tensor forwardInternal(Tensor ids) {
        return weight.value().gather(ids);
    }
}
