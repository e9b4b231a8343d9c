package dev.kiln.spark;

import dev.kiln.engine.Kiln;
import dev.kiln.engine.exec.CompiledModel;
import dev.kiln.engine.ir.Signature;
import dev.kiln.engine.nn.Block;
import dev.kiln.engine.tensor.TensorData;
import dev.kiln.format.safetensors.Safetensors;
import dev.kiln.format.store.ModelStore;
import org.apache.spark.sql.SparkSession;

import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Map;

/** Shared set-up of the Spark tests: a local session on loopback, and models written to files. */
final class SparkTestSupport {
    static final Path MODELS = Paths.get(System.getProperty("kiln.models.dir", "../shared/models"));

    private SparkTestSupport() {
    }

    static SparkSession localSession(String name) {
        return SparkSession.builder()
                .master("local[2]")
                .appName(name)
                .config("spark.ui.enabled", "false")
                .config("spark.driver.host", "127.0.0.1")
                .config("spark.driver.bindAddress", "127.0.0.1")
                .config("spark.sql.shuffle.partitions", "2")
                .getOrCreate();
    }

    static Map<String, TensorData> reference(String model, String file) {
        return Safetensors.read(MODELS.resolve(model).resolve(file + ".safetensors"));
    }

    /** Compiles {@code block} and saves it as a .kiln file at {@code file}; returns the location. */
    static String save(Block block, Signature signature, Path file) {
        try (CompiledModel model = Kiln.compile(block, signature)) {
            new ModelStore(new org.apache.hadoop.conf.Configuration()).save(model, file.getFileName().toString(), null, file.toString(), true);
        }
        return file.toString();
    }
}
