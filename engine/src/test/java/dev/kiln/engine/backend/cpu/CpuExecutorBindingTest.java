package dev.kiln.engine.backend.cpu;

import dev.kiln.engine.Kiln;
import dev.kiln.engine.backend.Kernel;
import dev.kiln.engine.exec.CompiledModel;
import dev.kiln.engine.exec.HandModel;
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
}
