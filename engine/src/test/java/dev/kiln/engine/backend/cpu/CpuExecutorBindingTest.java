package dev.kiln.engine.backend.cpu;

import dev.kiln.engine.Kiln;
import dev.kiln.engine.backend.Kernel;
import dev.kiln.engine.exec.CompiledModel;
import dev.kiln.engine.exec.HandModel;
import dev.kiln.engine.nn.ActivationBlock;
import dev.kiln.engine.nn.Dense;
import dev.kiln.engine.nn.Sequential;
import dev.kiln.engine.ops.Activation;
import dev.kiln.engine.tensor.TensorData;
import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Binding an input records what is wanted; the schedule is rebuilt at the next run only when that is other memory
 * than it was built to read. Values worked out by hand for y = relu(x W^T + b), W = [[1, 2], [-1, 0.5]], b = [0.5, -1].
 */
class CpuExecutorBindingTest {
    private static ByteBuffer rows(float... values) {
        ByteBuffer b = ByteBuffer.allocateDirect(4 * 2 * 4).order(ByteOrder.LITTLE_ENDIAN);
        b.asFloatBuffer().put(values);
        return b;
    }

    private static float[] run(CpuExecutor executor, int batch) {
        executor.run(batch);
        float[] out = new float[2 * batch];
        executor.getOutput(0, out, 0);
        return out;
    }

    @Test
    void rebindingRebuildsOnlyForOtherMemory() {
        try (CompiledModel model = Kiln.compile(HandModel.block(), HandModel.SIGNATURE)) {
            CpuExecutor executor = (CpuExecutor) model.newExecutor(4);
            try {
                // [3, 1] -> [5.5, 0]; [-2, 4] -> [6.5, 3]; [0, 0] -> [0.5, 0]; [1, 1] -> [3.5, 0].
                ByteBuffer a = rows(3, 1, -2, 4);
                executor.bindInput(0, a);
                assertThat(run(executor, 2)).containsExactly(5.5f, 0f, 6.5f, 3f);
                List<Kernel> builtForA = executor.schedule();

                // Unbound and bound again to the same memory (another view of it, as a pooled executor's next task
                // gets when the allocator hands the same block back): no rebuild, and the values are read in place.
                executor.unbindInputs();
                ByteBuffer sameMemory = a.duplicate().order(ByteOrder.LITTLE_ENDIAN);
                executor.bindInput(0, sameMemory);
                sameMemory.asFloatBuffer().put(0, new float[] {0, 0});
                assertThat(run(executor, 2)).containsExactly(0.5f, 0f, 6.5f, 3f);
                assertThat(executor.schedule().get(0)).as("same memory, same kernels").isSameAs(builtForA.get(0));

                // Other memory: rebuilt, and read from there.
                executor.bindInput(0, rows(1, 1, 3, 1));
                assertThat(run(executor, 2)).containsExactly(3.5f, 0f, 5.5f, 0f);
                assertThat(executor.schedule().get(0)).isNotSameAs(builtForA.get(0));

                // Unbound: the executor's own memory again, filled by setInput; the bound buffer is not read.
                executor.unbindInputs();
                executor.setInput(0, new float[] {-2, 4}, 0, 1);
                assertThat(run(executor, 1)).containsExactly(6.5f, 3f);
            } finally {
                executor.close();
            }
        }
    }

    /**
     * Rows {@code stride} floats apart, each row's two values first and NaN in the gap after them: a kernel that read
     * the gap would turn its row's outputs into NaN.
     */
    private static ByteBuffer stridedRows(int stride, float[]... rows) {
        ByteBuffer b = ByteBuffer.allocateDirect(4 * stride * rows.length).order(ByteOrder.LITTLE_ENDIAN);
        for (int r = 0; r < rows.length; r++) {
            for (int i = 0; i < stride; i++) {
                b.putFloat(4 * (r * stride + i), i < rows[r].length ? rows[r][i] : Float.NaN);
            }
        }
        return b;
    }

    private static boolean packsRows(CpuExecutor executor) {
        return executor.schedule().stream().anyMatch(k -> k instanceof CpuExecutor.PackRows);
    }

    /** A dense layer reads rows bound in place with their stride: no packed copy, the gaps never read. */
    @Test
    void aDenseLayerReadsStridedRowsInPlace() {
        try (CompiledModel model = Kiln.compile(HandModel.block(), HandModel.SIGNATURE)) {
            CpuExecutor executor = (CpuExecutor) model.newExecutor(4);
            try {
                // [3, 1] -> [5.5, 0]; [-2, 4] -> [6.5, 3]; [0, 0] -> [0.5, 0]; [1, 1] -> [3.5, 0].
                ByteBuffer rows = stridedRows(5, new float[] {3, 1}, new float[] {-2, 4}, new float[] {0, 0}, new float[] {1, 1});
                assertThat(executor.bindInputRows(0, rows, 5)).isTrue();
                assertThat(run(executor, 4)).containsExactly(5.5f, 0f, 6.5f, 3f, 0.5f, 0f, 3.5f, 0f);
                assertThat(packsRows(executor)).as("the dense layer reads the rows where they are").isFalse();
                // One row: the single-row path reads row 0 as it is.
                assertThat(run(executor, 1)).containsExactly(5.5f, 0f);
                // setInput writes rows at the stride, leaving the gaps alone.
                executor.setInput(0, new float[] {1, 1, 3, 1}, 0, 2);
                assertThat(rows.getFloat(4 * 5)).isEqualTo(3f);
                assertThat(rows.getFloat(4 * 2)).isNaN();
                assertThat(run(executor, 2)).containsExactly(3.5f, 0f, 5.5f, 0f);
                // A stride under a row's width, or a buffer short of the capacity's rows, is refused.
                assertThat(executor.bindInputRows(0, rows, 1)).isFalse();
                org.assertj.core.api.Assertions.assertThatThrownBy(() -> executor.bindInputRows(0, stridedRows(5, new float[] {1, 1}), 5))
                        .hasMessageContaining("needs a direct buffer of 68 bytes for 4 rows");
            } finally {
                executor.close();
            }
        }
    }

    /**
     * Any other reader gets a packed copy made first: relu(x) feeds the dense layer here. x = [3, -1] -> relu [3, 0] ->
     * [3 + 0.5, -3 - 1] -> relu [3.5, 0]; x = [-2, 4] -> [0, 4] -> [8.5, 1] .
     */
    @Test
    void otherReadersOfStridedRowsGetAPackedCopy() {
        Sequential net = new Sequential().add(ActivationBlock.relu()).add(new Dense(2, Activation.RELU, true, 2));
        net.loadParameters(java.util.Map.of(
                "1.weight", TensorData.ofFloats(new long[] {2, 2}, new float[] {1, 2, -1, 0.5f}),
                "1.bias", TensorData.ofFloats(new long[] {2}, new float[] {0.5f, -1})));
        try (CompiledModel model = Kiln.compile(net, HandModel.SIGNATURE)) {
            CpuExecutor executor = (CpuExecutor) model.newExecutor(2);
            try {
                assertThat(executor.bindInputRows(0, stridedRows(3, new float[] {3, -1}, new float[] {-2, 4}), 3)).isTrue();
                assertThat(run(executor, 2)).containsExactly(3.5f, 0f, 8.5f, 1f);
                assertThat(packsRows(executor)).isTrue();
                // Bound packed again: no copy.
                executor.bindInput(0, rows(3, -1, -2, 4));
                assertThat(run(executor, 2)).containsExactly(3.5f, 0f, 8.5f, 1f);
                assertThat(packsRows(executor)).isFalse();
            } finally {
                executor.close();
            }
        }
    }
}
