package dev.kiln.engine.backend.gpu;

import dev.kiln.engine.KilnException;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class GpuInventoryTest {
    /** What nvidia-smi prints with the query Kiln uses, for a Hopper and an Ampere card. */
    private static final String SMI = """
            0, NVIDIA H100 80GB HBM3, 9.0, 550.90.07, 81559
            1, NVIDIA A10, 8.6, 550.90.07, 23028
            """;

    @Test
    void parsesNvidiaSmi() {
        List<GpuInventory.Gpu> gpus = GpuInventory.parse(SMI);
        assertThat(gpus).hasSize(2);
        assertThat(gpus.get(0)).isEqualTo(new GpuInventory.Gpu(0, "NVIDIA H100 80GB HBM3", 9, 0, "550.90.07", 81559));
        assertThat(gpus.get(1).capability()).isEqualTo("8.6");
        assertThat(GpuInventory.parse("\n")).isEmpty();
        assertThatThrownBy(() -> GpuInventory.parse("0, broken")).hasMessageContaining("Unexpected nvidia-smi line");
    }

    @Test
    void nd4jCudaServesAmpereAndRefusesAdaAndHopperNamingTheWayOut() {
        List<GpuInventory.Gpu> gpus = GpuInventory.parse(SMI);
        Nd4jCudaSupport.check(gpus.get(1));
        assertThat(Nd4jCudaSupport.supports(new GpuInventory.Gpu(0, "A100", 8, 0, "d", 1))).isTrue();
        assertThat(Nd4jCudaSupport.supports(new GpuInventory.Gpu(0, "T4", 7, 5, "d", 1))).isTrue();
        assertThat(Nd4jCudaSupport.supports(new GpuInventory.Gpu(0, "L4", 8, 9, "d", 1))).isFalse();
        assertThatThrownBy(() -> Nd4jCudaSupport.check(gpus.get(0)))
                .isInstanceOf(KilnException.class)
                .hasMessageContaining("GPU 0 (NVIDIA H100 80GB HBM3, compute capability 9.0")
                .hasMessageContaining("up to 8.6")
                .hasMessageContaining("Use Kiln's cuda backend");
    }

    @Test
    void theCudaNd4jBuildIsRefusedAtStartOnHopperOrWithoutAGpuAndAcceptedOnAmpere() {
        List<GpuInventory.Gpu> gpus = GpuInventory.parse(SMI);
        // Only the A10 visible: fine. Both, or the H100 alone: refused naming the H100.
        Nd4jBackendGuard.check(gpus, "1");
        assertThatThrownBy(() -> Nd4jBackendGuard.check(gpus, null)).hasMessageContaining("NVIDIA H100 80GB HBM3");
        assertThatThrownBy(() -> Nd4jBackendGuard.check(gpus, "0")).hasMessageContaining("compute capability 9.0");
        assertThatThrownBy(() -> Nd4jBackendGuard.check(gpus, "GPU-8f2c")).hasMessageContaining("NVIDIA H100");
        assertThatThrownBy(() -> Nd4jBackendGuard.check(List.of(), null))
                .isInstanceOf(KilnException.class).hasMessageContaining("nvidia-smi reports no GPU").hasMessageContaining("without -Pcuda-nd4j");
        assertThatThrownBy(() -> Nd4jBackendGuard.check(gpus, "3"))
                .hasMessageContaining("no visible GPU (CUDA_VISIBLE_DEVICES=3)");
        // This build has ND4J's CPU backend: the guard lets eager mode start without looking for GPUs.
        assertThat(Nd4jBackendGuard.cudaBuildOnClasspath()).isFalse();
        Nd4jBackendGuard.ensureUsable();
    }
}
