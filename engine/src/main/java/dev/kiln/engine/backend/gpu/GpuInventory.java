package dev.kiln.engine.backend.gpu;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * The NVIDIA GPUs of this machine as {@code nvidia-smi} reports them (index, name, compute capability, driver,
 * memory), without loading any CUDA library: Kiln decides which GPU backend can serve a device before touching one.
 * Empty when {@code nvidia-smi} is absent or fails (no driver), which callers treat as "no GPU".
 */
public final class GpuInventory {
    /** One GPU: compute capability {@code major.minor} (9.0 for H100/H200, 8.6 for A10/RTX 30xx, 8.0 for A100). */
    public record Gpu(int index, String name, int major, int minor, String driver, long memoryMiB) {
        public String capability() {
            return major + "." + minor;
        }

        @Override
        public String toString() {
            return "GPU " + index + " (" + name + ", compute capability " + capability() + ", driver " + driver + ", " + memoryMiB + " MiB)";
        }
    }

    static final List<String> COMMAND = List.of("nvidia-smi", "--query-gpu=index,name,compute_cap,driver_version,memory.total",
            "--format=csv,noheader,nounits");

    private GpuInventory() {
    }

    /** Runs {@code nvidia-smi} (5 s at most); empty when there is none or it fails. */
    public static List<Gpu> query() {
        try {
            Process p = new ProcessBuilder(COMMAND).redirectErrorStream(true).start();
            if (!p.waitFor(5, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                return List.of();
            }
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            return p.exitValue() == 0 ? parse(out) : List.of();
        } catch (IOException e) {
            return List.of();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return List.of();
        }
    }

    /** Parses {@code nvidia-smi}'s CSV (one GPU per line: index, name, compute_cap, driver_version, memory.total). */
    public static List<Gpu> parse(String csv) {
        List<Gpu> gpus = new ArrayList<>();
        for (String line : csv.split("\\R")) {
            if (line.isBlank()) {
                continue;
            }
            String[] f = line.split(",");
            if (f.length < 5) {
                throw new IllegalArgumentException("Unexpected nvidia-smi line (want index, name, compute_cap, driver, memory): " + line);
            }
            String[] cap = f[2].trim().split("\\.");
            gpus.add(new Gpu(Integer.parseInt(f[0].trim()), f[1].trim(), Integer.parseInt(cap[0]), cap.length > 1 ? Integer.parseInt(cap[1]) : 0,
                    f[3].trim(), Long.parseLong(f[4].trim())));
        }
        return gpus;
    }
}
