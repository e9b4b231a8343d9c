package dev.kiln.engine.exec;

import dev.kiln.engine.Kiln;
import dev.kiln.engine.backend.cpu.CpuBackend;
import dev.kiln.engine.ir.Signature;
import dev.kiln.engine.nn.Sequential;
import dev.kiln.engine.tensor.Shape;
import dev.kiln.engine.zoo.ModelZoo;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.lang.management.ManagementFactory;

import static org.assertj.core.api.Assertions.assertThat;

/** The compiled path allocates nothing per call once warm: no heap bytes, no off-heap bytes; closing frees everything. */
class ExecutorAllocationTest {
    private static final com.sun.management.ThreadMXBean THREADS = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();

    @ParameterizedTest
    @ValueSource(ints = {1, 1024})
    void steadyStateCallsAllocateNothing(int batch) {
        long offHeapBefore = CpuBackend.offHeapBytes();
        Sequential mlp = ModelZoo.seedMlp();
        Signature signature = Signature.builder().input("x", Shape.batched(512)).build();
        float[] input = new float[batch * 512];
        for (int i = 0; i < input.length; i++) {
            input[i] = (float) Math.sin(i * 0.37);
        }
        float[] output = new float[batch * 2];
        try (CompiledModel model = Kiln.compile(mlp, signature); Executor executor = model.newExecutor(batch)) {
            for (int i = 0; i < 30000 / Math.max(1, batch / 8); i++) {
                call(executor, input, output, batch);
            }
            int calls = batch == 1 ? 2000 : 50;
            long heapBytes = -1;
            long offHeapBytes = -1;
            // Steady state: on a loaded 2-core machine the JIT may still be compiling (or recompiling) the kernels after
            // the warm-up, and interpreted Vector API code allocates. A window with a compilation in it is not steady
            // state, so up to five windows are measured; a kernel that allocates per call allocates in every one.
            for (int window = 0; window < 5 && heapBytes != 0; window++) {
                long offHeap = CpuBackend.offHeapBytes();
                long heap = THREADS.getCurrentThreadAllocatedBytes();
                for (int i = 0; i < calls; i++) {
                    call(executor, input, output, batch);
                }
                heapBytes = THREADS.getCurrentThreadAllocatedBytes() - heap;
                offHeapBytes = CpuBackend.offHeapBytes() - offHeap;
            }

            assertThat(heapBytes).as("heap bytes allocated by %d calls at batch %d", calls, batch).isZero();
            assertThat(offHeapBytes).as("off-heap bytes allocated by %d calls at batch %d", calls, batch).isZero();
            assertThat(output[0]).isNotNaN();
        }
        assertThat(CpuBackend.offHeapBytes()).as("off-heap bytes after closing executor and model").isEqualTo(offHeapBefore);
    }

    private static void call(Executor executor, float[] input, float[] output, int batch) {
        executor.setInput(0, input, 0, batch);
        executor.run(batch);
        executor.getOutput(0, output, 0);
    }
}
