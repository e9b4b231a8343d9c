package dev.kiln.engine.nn;

import dev.kiln.engine.tensor.Tensor;

import java.util.List;

/** Runs its children in order, each on the previous one's outputs. Children are named 0, 1, 2, ... as in PyTorch. */
public class Sequential extends Block {
    public Sequential add(Block block) {
        addChild(Integer.toString(children().size()), block);
        return this;
    }

    public Sequential add(Block... blocks) {
        for (Block b : blocks) {
            add(b);
        }
        return this;
    }

    @Override
    protected List<Tensor> forwardInternal(List<Tensor> inputs) {
        List<Tensor> current = inputs;
        for (Block child : children().values()) {
            current = child.forwardAll(current.toArray(new Tensor[0]));
        }
        return current;
    }
}
