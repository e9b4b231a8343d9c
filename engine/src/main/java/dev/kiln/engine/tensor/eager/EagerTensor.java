package dev.kiln.engine.tensor.eager;

import dev.kiln.engine.tensor.DType;
import dev.kiln.engine.tensor.Shape;
import dev.kiln.engine.tensor.Tensor;
import dev.kiln.engine.tensor.TensorData;
import dev.kiln.engine.tensor.TensorEngine;
import org.nd4j.linalg.api.ndarray.INDArray;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

import static java.util.Objects.requireNonNull;

/** A tensor with concrete values in an ND4J array (float32, row-major). */
public final class EagerTensor extends Tensor {
    private INDArray array;

    EagerTensor(INDArray array) {
        this.array = requireNonNull(array, "array is null");
    }

    /** The ND4J array (borrowed: do not close or mutate it). */
    public INDArray array() {
        return array;
    }

    @Override
    protected TensorEngine engine() {
        return EagerEngine.INSTANCE;
    }

    @Override
    public Shape shape() {
        return Shape.of(array.shape());
    }

    @Override
    public boolean isSymbolic() {
        return false;
    }

    @Override
    protected void rebind(Tensor result, String opName) {
        requireSameShape(result, opName);
        // A true in-place update: other handles to this array see it, as in ND4J.
        array.assign(((EagerTensor) result).array);
    }

    @Override
    public float[] toFloatArray() {
        return array.dup('c').data().asFloat();
    }

    @Override
    public TensorData toData() {
        float[] values = toFloatArray();
        ByteBuffer bytes = ByteBuffer.allocate(values.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        bytes.asFloatBuffer().put(values);
        return new TensorData(DType.FLOAT32, array.shape(), bytes);
    }

    @Override
    public String toString() {
        return "EagerTensor" + shape() + "\n" + array;
    }
}
