package dev.kiln.engine.nn;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.Kiln;
import dev.kiln.engine.KilnException;
import dev.kiln.engine.ir.Signature;
import dev.kiln.engine.ops.Activation;
import dev.kiln.engine.tensor.Shape;
import dev.kiln.engine.tensor.Tensor;
import dev.kiln.engine.tensor.TensorData;
import dev.kiln.engine.zoo.ModelZoo;
import org.junit.jupiter.api.Test;

import java.util.HashMap;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class BlockApiTest {
    private static Map<String, TensorData> seedMlpWeights() {
        Map<String, TensorData> w = new HashMap<>();
        w.put("0.weight", TensorData.ofFloats(new long[] {256, 512}, new float[256 * 512]));
        w.put("0.bias", TensorData.ofFloats(new long[] {256}, new float[256]));
        w.put("2.weight", TensorData.ofFloats(new long[] {128, 256}, new float[128 * 256]));
        w.put("2.bias", TensorData.ofFloats(new long[] {128}, new float[128]));
        w.put("4.weight", TensorData.ofFloats(new long[] {2, 128}, new float[256]));
        w.put("4.bias", TensorData.ofFloats(new long[] {2}, new float[2]));
        return w;
    }

    @Test
    void parametersAreNamedLikePyTorchStateDict() {
        assertThat(ModelZoo.seedMlp().parameters().keySet())
                .containsExactly("0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias");
        Sequential nested = new Sequential().add(new Sequential().add(new Dense(3)), new Dense(2, Activation.RELU, false));
        nested.forward(Tensor.of(new long[] {1, 4}, new float[4]));
        assertThat(nested.parameters().keySet()).containsExactly("0.0.weight", "0.0.bias", "1.weight");
        assertThat(nested.parameters().get("0.0.weight").shape()).containsExactly(3, 4);
    }

    @Test
    void missingAndUnexpectedWeightsAreNamedWithShapes() {
        Map<String, TensorData> w = seedMlpWeights();
        w.remove("2.bias");
        w.put("5.weight", TensorData.ofFloats(new long[] {1, 2}, new float[2]));
        assertThatThrownBy(() -> ModelZoo.seedMlp().loadParameters(w))
                .isInstanceOf(KilnException.class)
                .hasMessageContaining("missing '2.bias' (model expects [128])")
                .hasMessageContaining("unexpected '5.weight' [1, 2]")
                .extracting(e -> ((KilnException) e).code()).isEqualTo(ErrorCode.PARAMETER_MISMATCH);
    }

    @Test
    void aMisShapedWeightNamesItAndBothShapes() {
        Map<String, TensorData> w = seedMlpWeights();
        w.put("2.weight", TensorData.ofFloats(new long[] {128, 255}, new float[128 * 255]));
        assertThatThrownBy(() -> ModelZoo.seedMlp().loadParameters(w))
                .isInstanceOf(KilnException.class)
                .hasMessage("Parameter '2.weight' expects shape [128, 256] but the weights have [128, 255]");
    }

    @Test
    void aWrongInputShapeNamesTheBlockExpectedAndActual() {
        Sequential mlp = ModelZoo.seedMlp();
        assertThatThrownBy(() -> mlp.forward(Tensor.of(new long[] {1, 511}, new float[511])))
                .isInstanceOf(KilnException.class)
                .hasMessage("Dense '0' expects input [1, 512] but got [1, 511]");
        assertThatThrownBy(() -> Kiln.compile(mlp, Signature.builder().input("x", Shape.batched(500)).build()))
                .isInstanceOf(KilnException.class)
                .hasMessage("Dense '0' expects input [batch, 512] but got [batch, 500]");
    }

    @Test
    void opShapeErrorsInsideCustomBlocksNameTheBlock() {
        LambdaBlock bad = new LambdaBlock("mismatch", x -> x.matmul(x));
        assertThatThrownBy(() -> bad.forward(Tensor.of(new long[] {2, 3}, new float[6])))
                .isInstanceOf(KilnException.class)
                .hasMessageContaining("In LambdaBlock(mismatch) (root): matmul inner dimensions differ: [2, 3] x [2, 3]");
    }

    @Test
    void dropoutIsTheIdentityAndTracesToNothing() {
        Sequential net = new Sequential().add(new Dropout(0.3), new Flatten());
        Tensor x = Tensor.of(new long[] {2, 2}, new float[] {1, 2, 3, 4});
        assertThat(net.forward(x).toFloatArray()).containsExactly(1, 2, 3, 4);
        assertThat(Kiln.trace(net, Signature.builder().input("x", Shape.batched(2)).build()).nodes()).isEmpty();
    }

    @Test
    void flattenKeepsTheBatch() {
        Tensor x = Tensor.of(new long[] {2, 2, 3}, new float[12]);
        assertThat(new Flatten().forward(x).shape()).isEqualTo(Shape.of(2, 6));
        var graph = Kiln.trace(new Flatten(), Signature.builder().input("x", Shape.batched(2, 3)).build());
        assertThat(graph.outputs().get(0).type().shape()).isEqualTo(Shape.batched(6));
    }

    @Test
    void normsStartWithPyTorchsInitialValuesSoAnUnloadedModelIsFinite() {
        // torch.nn.BatchNorm2d(3) / LayerNorm(3): weight 1, bias 0, running_mean 0, running_var 1.
        BatchNorm2d bn = new BatchNorm2d(3);
        assertThat(bn.parameters().get("weight").data().toFloatArray()).containsExactly(1f, 1f, 1f);
        assertThat(bn.parameters().get("bias").data().toFloatArray()).containsExactly(0f, 0f, 0f);
        assertThat(bn.parameters().get("running_mean").data().toFloatArray()).containsExactly(0f, 0f, 0f);
        assertThat(bn.parameters().get("running_var").data().toFloatArray()).containsExactly(1f, 1f, 1f);
        LayerNorm ln = new LayerNorm(3);
        assertThat(ln.parameters().get("weight").data().toFloatArray()).containsExactly(1f, 1f, 1f);
        assertThat(ln.parameters().get("bias").data().toFloatArray()).containsExactly(0f, 0f, 0f);
        // x / sqrt(1 + 1e-5) by hand for a fresh batch norm.
        float[] y = bn.forward(Tensor.of(new long[] {1, 3, 1, 1}, new float[] {1, -2, 4})).toFloatArray();
        double s = Math.sqrt(1 + 1e-5);
        assertThat(y[0]).isCloseTo((float) (1 / s), org.assertj.core.data.Offset.offset(1e-6f));
        assertThat(y[1]).isCloseTo((float) (-2 / s), org.assertj.core.data.Offset.offset(1e-6f));
        assertThat(y[2]).isCloseTo((float) (4 / s), org.assertj.core.data.Offset.offset(1e-6f));
        // The zoo CNN with seeded random weights (its batch norm unloaded) gives finite probabilities summing to 1.
        ModelZoo.Entry cnn = ModelZoo.get("small-cnn");
        cnn.block().setSeed(7);
        float[] x = new float[2 * 784];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) Math.sin(i * 0.1);
        }
        float[] p = cnn.block().forward(Tensor.of(new long[] {2, 1, 28, 28}, x)).toFloatArray();
        double sum = 0;
        for (float v : p) {
            assertThat(v).isFinite();
            sum += v;
        }
        assertThat(sum).isCloseTo(2.0, org.assertj.core.data.Offset.offset(1e-5));
    }
}
