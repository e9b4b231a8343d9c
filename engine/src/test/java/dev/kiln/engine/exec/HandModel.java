package dev.kiln.engine.exec;

import dev.kiln.engine.ir.Signature;
import dev.kiln.engine.nn.Dense;
import dev.kiln.engine.nn.Sequential;
import dev.kiln.engine.ops.Activation;
import dev.kiln.engine.tensor.Shape;
import dev.kiln.engine.tensor.TensorData;

import java.util.Map;

/**
 * The executor tests' model: y = relu(x W^T + b) with W = [[1, 2], [-1, 0.5]], b = [0.5, -1], small enough to work
 * out by hand (x = [3, 1] gives [5.5, 0]).
 */
public final class HandModel {
    public static final Signature SIGNATURE = Signature.builder().input("x", Shape.batched(2)).output("y").build();

    private HandModel() {
    }

    public static Sequential block() {
        Sequential net = new Sequential().add(new Dense(2, Activation.RELU, true, 2));
        net.loadParameters(Map.of(
                "0.weight", TensorData.ofFloats(new long[] {2, 2}, new float[] {1, 2, -1, 0.5f}),
                "0.bias", TensorData.ofFloats(new long[] {2}, new float[] {0.5f, -1})));
        return net;
    }
}
