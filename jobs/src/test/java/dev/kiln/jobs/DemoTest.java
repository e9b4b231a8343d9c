package dev.kiln.jobs;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.assertj.core.api.Assertions.assertThat;

/** bin/kiln demo, as CI can afford it: every step runs, with a small --rows. */
class DemoTest {
    @Test
    void theWholeStoryRunsAndWritesItsFiles(@TempDir Path dir) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int code = KilnCli.run(new String[] {"demo", "--out", dir.toString(), "--rows", "3000", "--calls", "50"},
                new PrintStream(out, true, StandardCharsets.UTF_8), new PrintStream(err, true, StandardCharsets.UTF_8));
        String text = out.toString(StandardCharsets.UTF_8);
        assertThat(code).as(err.toString(StandardCharsets.UTF_8)).isZero();
        assertThat(text)
                .contains("== 1. Eager").contains("== 2. Compile").contains("dense(%x, %0, %1) {activation=relu}")
                .contains("memory plan at batch 1024").contains("PASSED").contains("== 4. Export").contains("== 5. Benchmark")
                .contains("scored 3,000 rows").contains("first predictions").contains("Done.");
        assertThat(dir.resolve("mlp.kiln")).isRegularFile();
        assertThat(Files.isDirectory(dir.resolve("rows.parquet"))).isTrue();
        assertThat(Files.isDirectory(dir.resolve("predictions.parquet"))).isTrue();
    }
}
