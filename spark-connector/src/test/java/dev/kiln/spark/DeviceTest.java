package dev.kiln.spark;

import dev.kiln.engine.KilnException;
import dev.kiln.engine.backend.cpu.CpuBackend;
import org.apache.spark.resource.ResourceInformation;
import org.junit.jupiter.api.Test;

import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class DeviceTest {
    private static Map<String, ResourceInformation> gpus(String... addresses) {
        return Map.of("gpu", new ResourceInformation("gpu", addresses));
    }

    @Test
    void autoUsesEveryGpuTheTaskWasGivenInOrder() {
        assertThat(Device.selectAll("auto", gpus("3", "5"))).containsExactly(Device.cuda(3), Device.cuda(5));
        assertThat(Device.selectAll("auto", Map.of())).containsExactly(Device.CPU);
        assertThat(Device.selectAll("cuda:1", gpus("3", "5"))).containsExactly(Device.cuda(1));
        assertThatThrownBy(() -> Device.selectAll("auto", gpus("0", "GPU-8f2c")))
                .hasMessageContaining("Spark assigned GPU address 'GPU-8f2c', which is not a device ordinal");
    }

    @Test
    void autoTakesTheTasksFirstGpuAndTheCpuWithout() {
        assertThat(Device.select("auto", gpus("3", "5"))).isEqualTo(Device.cuda(3));
        assertThat(Device.select("auto", Map.of())).isEqualTo(Device.CPU);
        assertThat(Device.select("auto", null)).isEqualTo(Device.CPU);
        assertThat(Device.select("cpu", gpus("0"))).isEqualTo(Device.CPU);
        assertThat(Device.select("cuda:2", Map.of())).isEqualTo(Device.cuda(2));
        assertThatThrownBy(() -> Device.select("tpu", null)).isInstanceOf(KilnException.class).hasMessageContaining("use auto, cpu or cuda:N");
    }

    @Test
    void aGpuDeviceGetsTheRegisteredBackendWithItsOrdinal() {
        RecordingBackend.ORDINALS.clear();
        Backends.register("cuda", RecordingBackend::new);
        try {
            assertThat(Backends.forDevice(Device.select("auto", gpus("7"))).name()).isEqualTo("recording-cuda");
            assertThat(RecordingBackend.ORDINALS).containsExactly(7);
            assertThat(Backends.forDevice(Device.CPU)).isSameAs(CpuBackend.INSTANCE);
        } finally {
            Backends.unregister("cuda");
        }
        assertThatThrownBy(() -> Backends.forDevice(Device.cuda(0)))
                .isInstanceOf(KilnException.class)
                .hasMessageContaining("Cannot open device cuda:0").hasMessageContaining("nvidia-smi reports");
    }
}
