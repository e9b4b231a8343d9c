package dev.kiln.jobs;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Properties;

import static org.assertj.core.api.Assertions.assertThat;

/** The files in conf/ do what they say. */
class ConfTest {
    private static final Path CONF = Path.of(System.getProperty("kiln.docs.dir", "../docs")).resolveSibling("conf");

    @Test
    void theGpuDiscoveryScriptPrintsSparksJsonFromNvidiaSmi(@TempDir Path dir) throws Exception {
        Path fake = dir.resolve("nvidia-smi");
        Files.writeString(fake, "#!/usr/bin/env bash\nprintf '0\\n1\\n'\n");
        fake.toFile().setExecutable(true);
        ProcessBuilder builder = new ProcessBuilder("bash", CONF.resolve("gpu-discovery.sh").toString()).redirectErrorStream(true);
        builder.environment().put("PATH", dir + ":" + System.getenv("PATH"));
        Process p = builder.start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).strip();
        assertThat(p.waitFor()).isZero();
        assertThat(out).isEqualTo("{\"name\": \"gpu\", \"addresses\": [\"0\",\"1\"]}");
    }

    @Test
    void kilnDefaultsAreValidSettings() {
        Properties defaults = ScoreJob.defaults(CONF.resolve("kiln-defaults.properties").toString());
        // Left unset on purpose: KilnModel then sizes batches to 1 MiB of model input.
        assertThat(defaults.getProperty("kiln.batchSize")).isNull();
        assertThat(Long.parseLong(defaults.getProperty("kiln.broadcastThreshold"))).isPositive();
        assertThat(dev.kiln.spark.Device.validateSetting(defaults.getProperty("kiln.device"))).isEqualTo("auto");
        assertThat(defaults.getProperty("kiln.onError")).isIn("fail", "null");
    }
}
