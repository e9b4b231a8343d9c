package dev.kiln.engine.ops;

import dev.kiln.engine.backend.Kernel;
import dev.kiln.engine.backend.Slot;
import dev.kiln.engine.ir.Attributes;
import dev.kiln.engine.ir.TensorType;

import java.util.List;

/** x unchanged: a view of its input (emitted by importers; algebraic simplification removes it). */
public final class IdentityOp extends BaseOp {
    IdentityOp() {
        super(OpRegistry.IDENTITY, "x unchanged (a view)", List.of("x"), 1, List.of());
    }

    @Override
    public List<TensorType> inferTypes(List<TensorType> inputs, Attributes attributes) {
        checkArity(inputs);
        return List.of(inputs.get(0));
    }

    @Override
    public boolean aliasesInput() {
        return true;
    }

    @Override
    public Kernel newKernel(Slot[] inputs, Slot[] outputs, Attributes attributes) {
        return ReshapeOp.copyUnlessAliased(inputs[0], outputs[0]);
    }
}
