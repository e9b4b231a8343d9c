package dev.kiln.format.kiln;

import dev.kiln.engine.backend.cpu.CpuBackend;
import dev.kiln.engine.exec.CompiledModel;
import dev.kiln.engine.ir.Attributes;
import dev.kiln.engine.ir.Graph;
import dev.kiln.engine.ir.GraphBuilder;
import dev.kiln.engine.ir.TensorType;
import dev.kiln.engine.ir.Value;
import dev.kiln.engine.ops.OpRegistry;
import dev.kiln.engine.tensor.DType;
import dev.kiln.engine.tensor.Shape;
import dev.kiln.engine.tensor.TensorData;
import dev.kiln.format.store.ModelStore;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.RandomAccessFile;
import java.nio.ByteOrder;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * A model whose weights exceed 2 GiB (three 800 MB parameters, 2.4 GB in all) is written, read back without putting
 * the weights on the Java heap (the test JVM's heap is 3 GB), and run. The parameters are zeros but for a few values,
 * so the expected output is worked out by hand: y = x + (1 + 2) + (5) + (7 - 0.5).
 */
class LargeModelTest {
    private static final int ELEMENTS = 200_000_000;

    @Test
    void weightsOverTwoGibibytesWork(@TempDir Path dir) throws Exception {
        float[][] nonZero = {{1f, 2f}, {5f, 0f}, {7f, -0.5f}};
        GraphBuilder b = new GraphBuilder();
        Value x = b.input("x", TensorType.float32(Shape.batched(2)));
        Value y = x;
        for (int i = 0; i < 3; i++) {
            TensorData p = sparseParameter(dir.resolve("p" + i + ".bin"), nonZero[i][0], nonZero[i][1]);
            Value param = b.parameter("p" + i, p);
            Value sum = b.add1(OpRegistry.REDUCE_SUM, Attributes.of("axes", new long[] {0}, "keepdims", 0), null, param);
            y = b.add1(OpRegistry.ADD, Attributes.EMPTY, null, y, sum);
        }
        b.output("y", y);
        Graph graph = b.build();

        String location = dir.resolve("large.kiln").toString();
        try (CompiledModel model = new CompiledModel(graph, List.of(), CpuBackend.INSTANCE)) {
            new ModelStore(new org.apache.hadoop.conf.Configuration()).save(model, "large", null, location, false);
        }
        long size = Files.size(Path.of(location));
        assertThat(size).isGreaterThan(3L * ELEMENTS * 4).isGreaterThan(1L << 31);

        long heapBefore = usedHeap();
        KilnFormat.ModelFile file = ModelStore.withDefaults().load(location);
        assertThat(file.parameterBytes()).isEqualTo(3L * ELEMENTS * 4);
        assertThat(usedHeap() - heapBefore).as("heap grown by loading a %d-byte model", size).isLessThan(256L << 20);
        try (CompiledModel loaded = file.toCompiledModel()) {
            float[] out = loaded.run(Map.of("x", TensorData.ofFloats(new long[] {2, 2}, new float[] {0, 1, 10, -20}))).get("y").toFloatArray();
            assertThat(out).containsExactly(14.5f, 15.5f, 24.5f, -5.5f);
        }
        Files.delete(Path.of(location));
    }

    /** A float32 vector of ELEMENTS values backed by a sparse memory-mapped file: zeros but the first and last. */
    private static TensorData sparseParameter(Path file, float first, float last) throws Exception {
        try (RandomAccessFile raf = new RandomAccessFile(file.toFile(), "rw")) {
            raf.setLength(ELEMENTS * 4L);
            MappedByteBuffer map = raf.getChannel().map(FileChannel.MapMode.READ_WRITE, 0, ELEMENTS * 4L);
            map.order(ByteOrder.LITTLE_ENDIAN).putFloat(0, first).putFloat((ELEMENTS - 1) * 4, last);
            return new TensorData(DType.FLOAT32, new long[] {ELEMENTS}, map);
        }
    }

    private static long usedHeap() {
        System.gc();
        Runtime rt = Runtime.getRuntime();
        return rt.totalMemory() - rt.freeMemory();
    }
}
