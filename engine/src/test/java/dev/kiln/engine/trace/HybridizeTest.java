package dev.kiln.engine.trace;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.Kiln;
import dev.kiln.engine.KilnException;
import dev.kiln.engine.exec.CompiledModel;
import dev.kiln.engine.ir.Signature;
import dev.kiln.engine.nn.Dense;
import dev.kiln.engine.nn.LambdaBlock;
import dev.kiln.engine.nn.Sequential;
import dev.kiln.engine.ops.Activation;
import dev.kiln.engine.tensor.Shape;
import dev.kiln.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.concurrent.atomic.AtomicInteger;

import static dev.kiln.engine.TestGraphs.assertAllClose;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** The seed's rules of hybrid programming, made real: side effects, value access, in-place updates. */
class HybridizeTest {
    @Test
    void sideEffectsRunEagerlyAndWhileTracingButNeverInCompiledRuns() {
        AtomicInteger calls = new AtomicInteger();
        Sequential net = new Sequential().add(new Dense(4, Activation.RELU, true, 3), new LambdaBlock("count", x -> {
            calls.incrementAndGet();
            return x.mul(2f);
        }));
        Tensor x = Tensor.of(new long[] {2, 3}, new float[] {1, 2, 3, 4, 5, 6});

        Tensor eager = net.forward(x);
        net.forward(x);
        assertThat(calls.get()).as("two eager calls").isEqualTo(2);

        net.hybridize();
        Tensor first = net.forward(x);
        assertThat(calls.get()).as("the first hybridized call traces once").isEqualTo(3);
        for (int i = 0; i < 5; i++) {
            net.forward(x);
        }
        net.forward(Tensor.of(new long[] {5, 3}, new float[15]));
        assertThat(calls.get()).as("compiled calls, any batch size, run no Java code of forward").isEqualTo(3);
        assertAllClose(first.toFloatArray(), eager.toFloatArray(), 1e-6, 1e-6, "hybridized vs eager");
    }

    @Test
    void readingASymbolicValueFailsNamingTheBlockAndTheOperation() {
        Sequential net = new Sequential().add(new Dense(2, Activation.NONE, true, 3), new LambdaBlock("peek", x -> {
            System.out.println("first value: " + x.getFloat(0, 0));
            return x;
        }));
        Signature signature = Signature.builder().input("x", Shape.batched(3)).build();

        assertThatThrownBy(() -> Kiln.compile(net, signature))
                .isInstanceOf(KilnException.class)
                .hasMessageContaining("LambdaBlock(peek) '1'")
                .hasMessageContaining("getFloat()")
                .hasMessageContaining("Express the computation with tensor ops")
                .extracting(e -> ((KilnException) e).code()).isEqualTo(ErrorCode.TRACE_ERROR);
    }

    @Test
    void branchingOnAValueFailsWhileTracing() {
        LambdaBlock branchy = new LambdaBlock("branch", x -> x.sum(false, 0, 1).any() ? x.relu() : x.neg());
        // Eagerly the branch is ordinary Java.
        Tensor y = branchy.forward(Tensor.of(new long[] {1, 2}, new float[] {-1, 3}));
        assertThat(y.toFloatArray()).containsExactly(0f, 3f);

        assertThatThrownBy(() -> Kiln.compile(branchy, Signature.builder().input("x", Shape.batched(2)).build()))
                .isInstanceOf(KilnException.class)
                .hasMessageContaining("LambdaBlock(branch) (root)")
                .hasMessageContaining("any() (branching on a value)");
    }

    @Test
    void inPlaceUpdatesAreFunctionalizedAndMatchEager() {
        LambdaBlock inPlace = new LambdaBlock("in-place", x -> {
            Tensor acc = x.mul(1f);
            acc.addi(x);          // acc = 2x
            acc.muli(3f);         // acc = 6x
            acc.subi(x.exp());    // acc = 6x - e^x
            Tensor mask = x.relu();
            mask.assign(x.sigmoid());  // mask = sigmoid(x), same shape
            acc.divi(mask.add(1f));    // acc = (6x - e^x) / (sigmoid(x) + 1)
            return acc;
        });
        float[] values = {-2f, -0.5f, 0f, 0.25f, 1f, 3f};
        Tensor x = Tensor.of(new long[] {3, 2}, values);
        float[] eager = inPlace.forward(x).toFloatArray();
        for (int i = 0; i < values.length; i++) {
            double v = values[i];
            double expected = (6 * v - Math.exp(v)) / (1 / (1 + Math.exp(-v)) + 1);
            assertThat((double) eager[i]).as("eager element %d against the formula", i).isCloseTo(expected, org.assertj.core.data.Offset.offset(1e-5));
        }
        try (CompiledModel model = Kiln.compile(inPlace, Signature.builder().input("x", Shape.batched(2)).build())) {
            float[] compiled = model.run(java.util.Map.of("x", x.toData())).get("output").toFloatArray();
            assertAllClose(compiled, eager, 1e-5, 1e-6, "compiled vs eager");
        }
    }

    @Test
    void assignBroadcastsAScalarToTheSymbolicShape() {
        LambdaBlock fill = new LambdaBlock("fill", x -> {
            Tensor y = x.mul(1f);
            y.assign(7f);
            return y.add(x);
        });
        try (CompiledModel model = Kiln.compile(fill, Signature.builder().input("x", Shape.batched(2)).build())) {
            float[] out = model.run(java.util.Map.of("x", dev.kiln.engine.tensor.TensorData.ofFloats(new long[] {2, 2}, new float[] {1, 2, 3, 4})))
                    .get("output").toFloatArray();
            assertThat(out).containsExactly(8f, 9f, 10f, 11f);
        }
    }

    @Test
    void anInPlaceUpdateCannotChangeTheShape() {
        // [batch, 1] + [1, 3] broadcasts to [batch, 3]: fine out of place, not in place (as in PyTorch).
        Tensor row = Tensor.of(new long[] {1, 3}, new float[] {1, 2, 3});
        LambdaBlock bad = new LambdaBlock("grow", x -> x.addi(row));
        assertThatThrownBy(() -> bad.forward(Tensor.of(new long[] {2, 1}, new float[] {1, 2})))
                .isInstanceOf(KilnException.class)
                .hasMessageContaining("addi would change the shape of the tensor from [2, 1] to [2, 3]");
        assertThatThrownBy(() -> Kiln.compile(bad, Signature.builder().input("x", Shape.batched(1)).build()))
                .isInstanceOf(KilnException.class)
                .hasMessageContaining("addi would change the shape");
    }
}
