package dev.kiln.engine.trace;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;
import dev.kiln.engine.ir.Value;
import dev.kiln.engine.tensor.CallScope;
import dev.kiln.engine.tensor.Shape;
import dev.kiln.engine.tensor.Tensor;
import dev.kiln.engine.tensor.TensorData;
import dev.kiln.engine.tensor.TensorEngine;

/**
 * A tensor that stands for a graph value while a block is traced. Its values do not exist yet: reading them fails
 * with an error naming the block and the operation. In-place ops re-point the handle at the new value (functionalization
 * by renaming).
 */
public final class SymbolicTensor extends Tensor {
    private final Tracer tracer;
    private Value value;

    SymbolicTensor(Tracer tracer, Value value) {
        this.tracer = tracer;
        this.value = value;
    }

    /** The graph value this handle currently names. */
    public Value value() {
        return value;
    }

    @Override
    protected TensorEngine engine() {
        return tracer;
    }

    @Override
    public Shape shape() {
        return value.type().shape();
    }

    @Override
    public boolean isSymbolic() {
        return true;
    }

    @Override
    protected void rebind(Tensor result, String opName) {
        requireSameShape(result, opName);
        this.value = tracer.valueOf(result);
    }

    private KilnException valueAccess(String operation) {
        String block = CallScope.current();
        return KilnException.of(ErrorCode.TRACE_ERROR,
                "%s called %s on a symbolic tensor %s while the model was being compiled (traced). A compiled graph has no "
                        + "concrete values at trace time, so it cannot read them or branch on them. Express the computation "
                        + "with tensor ops instead (for example relu, mul by a mask, or where-style arithmetic), or run this block "
                        + "eagerly (do not hybridize it) while debugging.",
                block == null ? "Model code" : "Block " + block, operation, shape());
    }

    @Override
    public float[] toFloatArray() {
        throw valueAccess("toFloatArray()");
    }

    @Override
    public TensorData toData() {
        throw valueAccess("toData()");
    }

    @Override
    public float item() {
        throw valueAccess("item()");
    }

    @Override
    public float getFloat(long... index) {
        throw valueAccess("getFloat()");
    }

    @Override
    public boolean all() {
        throw valueAccess("all() (branching on a value)");
    }

    @Override
    public boolean any() {
        throw valueAccess("any() (branching on a value)");
    }

    @Override
    public String toString() {
        return "SymbolicTensor" + shape();
    }
}
