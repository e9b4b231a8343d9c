package dev.kiln.jobs;

import org.junit.jupiter.api.Test;

import java.io.InputStream;
import java.nio.charset.StandardCharsets;

import static org.assertj.core.api.Assertions.assertThat;

/** The JMH suite is only runnable when the annotation processor generated its list at build time. */
class KernelBenchmarksWiringTest {
    @Test
    void theBuildGeneratesTheBenchmarkList() throws Exception {
        try (InputStream in = getClass().getClassLoader().getResourceAsStream("META-INF/BenchmarkList")) {
            assertThat(in).as("META-INF/BenchmarkList (jmh-generator-annprocess on the compile path)").isNotNull();
            String list = new String(in.readAllBytes(), StandardCharsets.UTF_8);
            for (String benchmark : new String[] {"seedMlp", "dense512x256Relu", "cnnConv2Batch256", "cnnMaxPoolBatch256",
                    "attentionSoftmaxBatch64", "geluBatch64", "rowCopyBatch512"}) {
                assertThat(list).contains("KernelBenchmarks_" + benchmark + "_jmhTest");
            }
        }
    }
}
