package dev.kiln.engine.exec;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.Kiln;
import dev.kiln.engine.KilnException;
import dev.kiln.engine.ir.Signature;
import dev.kiln.engine.nn.Sequential;
import dev.kiln.engine.tensor.Shape;
import dev.kiln.engine.tensor.TensorData;
import org.junit.jupiter.api.Test;

import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class ExecutorTest {
    private static Sequential handModel() {
        return HandModel.block();
    }

    private static final Signature SIGNATURE = HandModel.SIGNATURE;

    @Test
    void computesHandWorkedValuesAndGrowsForLargerBatches() {
        try (CompiledModel model = Kiln.compile(handModel(), SIGNATURE); Executor executor = model.newExecutor(1)) {
            // x = [3, 1]: [3 + 2 + 0.5, -3 + 0.5 - 1] = [5.5, -3.5] -> relu -> [5.5, 0]
            executor.setInput(0, new float[] {3, 1}, 0, 1);
            executor.run(1);
            float[] out = new float[2];
            executor.getOutput(0, out, 0);
            assertThat(out).containsExactly(5.5f, 0f);

            // Three rows grow the buffers; rows: [3,1] -> [5.5, 0]; [0,0] -> [0.5, 0]; [-2, 4] -> [6.5, 3]
            executor.setInput(0, new float[] {3, 1, 0, 0, -2, 4}, 0, 3);
            executor.run(3);
            assertThat(executor.capacity()).isGreaterThanOrEqualTo(3);
            float[] out3 = new float[6];
            assertThat(executor.getOutput(0, out3, 0)).isEqualTo(6);
            assertThat(out3).containsExactly(5.5f, 0f, 0.5f, 0f, 6.5f, 3f);
        }
    }

    @Test
    void aBoundDirectBufferIsReadWithoutCopying() {
        try (CompiledModel model = Kiln.compile(handModel(), SIGNATURE); Executor executor = model.newExecutor(4)) {
            java.nio.ByteBuffer input = java.nio.ByteBuffer.allocateDirect(4 * 2 * 4).order(java.nio.ByteOrder.LITTLE_ENDIAN);
            executor.bindInput(0, input);
            input.asFloatBuffer().put(new float[] {3, 1, -2, 4});
            executor.run(2);
            float[] out = new float[4];
            executor.getOutput(0, out, 0);
            assertThat(out).containsExactly(5.5f, 0f, 6.5f, 3f);
            // Changing the buffer changes the next result: the executor reads it in place.
            input.asFloatBuffer().put(0, new float[] {0, 0});
            executor.run(1);
            executor.getOutput(0, out, 0);
            assertThat(out[0]).isEqualTo(0.5f);
            assertThatThrownBy(() -> executor.bindInput(0, java.nio.ByteBuffer.allocateDirect(8)))
                    .isInstanceOf(KilnException.class).hasMessageContaining("needs a direct buffer of 32 bytes for 4 rows");
        }
    }

    @Test
    void closingTheModelKeepsWeightsAliveForOpenExecutorsAndRefusesNewOnes() {
        long before = dev.kiln.engine.backend.cpu.CpuBackend.offHeapBytes();
        CompiledModel model = Kiln.compile(handModel(), SIGNATURE);
        Executor executor = model.newExecutor(2);
        model.close();
        executor.setInput(0, new float[] {3, 1}, 0, 1);
        executor.run(1);
        float[] out = new float[2];
        executor.getOutput(0, out, 0);
        assertThat(out).containsExactly(5.5f, 0f);
        assertThatThrownBy(() -> model.newExecutor(1)).isInstanceOf(KilnException.class).hasMessageContaining("closed");
        executor.close();
        assertThatThrownBy(() -> executor.getOutput(0, out, 0)).isInstanceOf(KilnException.class).hasMessageContaining("closed");
        assertThat(dev.kiln.engine.backend.cpu.CpuBackend.offHeapBytes()).as("weights freed once the last executor closed").isEqualTo(before);
    }

    @Test
    void nanInputsFlowThroughWithoutError() {
        try (CompiledModel model = Kiln.compile(handModel(), SIGNATURE)) {
            float[] y = model.run(Map.of("x", TensorData.ofFloats(new long[] {2, 2}, new float[] {Float.NaN, 1, 1, 1}))).get("y").toFloatArray();
            assertThat(y[0]).isNaN();
            assertThat(y[1]).isNaN();
            assertThat(y[2]).isEqualTo(3.5f);
        }
    }

    @Test
    void aWrongInputShapeNamesTheInputAndBothShapes() {
        try (CompiledModel model = Kiln.compile(handModel(), SIGNATURE)) {
            assertThatThrownBy(() -> model.run(Map.of("x", TensorData.ofFloats(new long[] {1, 3}, new float[3]))))
                    .isInstanceOf(KilnException.class)
                    .hasMessage("Input 'x' expects shape [batch, 2] but got [1, 3]")
                    .extracting(e -> ((KilnException) e).code()).isEqualTo(ErrorCode.BAD_INPUT);
            assertThatThrownBy(() -> model.run(Map.of("features", TensorData.ofFloats(new long[] {1, 2}, new float[2]))))
                    .hasMessageContaining("Unexpected input 'features'");
        }
    }

    @Test
    void theMemoryPlanReusesBuffersOfDeadValues() {
        try (CompiledModel model = Kiln.compile(dev.kiln.engine.zoo.ModelZoo.seedMlp(), Signature.builder().input("x", Shape.batched(512)).build())) {
            var plan = model.memoryPlan(1024);
            // x [1024,512], h1 [1024,256], h2 [1024,128], y [1024,2]: unplanned 4 * 1024 * (512 + 256 + 128 + 2) bytes.
            assertThat(plan.naiveBytes()).isEqualTo(4L * 1024 * (512 + 256 + 128 + 2));
            // h2 reuses x's bytes once x is dead; peak = x + h1 (h2 and y fit into x's region).
            assertThat(plan.peakBytes()).isEqualTo(4L * 1024 * (512 + 256));
        }
    }
}
