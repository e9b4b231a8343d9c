package dev.kiln.engine.backend.cpu;

import dev.kiln.engine.backend.Kernel;
import dev.kiln.engine.backend.Slot;
import dev.kiln.engine.ir.Graph;
import dev.kiln.engine.ir.Node;
import dev.kiln.engine.ops.OpRegistry;

import java.util.ArrayList;
import java.util.List;
import java.util.stream.Collectors;

/**
 * Dense layers that feed each other (an MLP, an FFN), run depth first over chunks of rows: every layer on rows 0 to
 * R-1, then every layer on rows R to 2R-1, and so on, so that each layer's output is still in the core's cache when
 * the next layer reads it, instead of going out to L3 between layers at a large batch. R is chosen so a chunk's input
 * and all its layers' outputs fit in {@value #CACHE_BUDGET} bytes (the seed MLP: 288 rows). Each layer is its own
 * {@link DnnlDenseKernel}, whose plans are moved to each chunk's rows; a batch of at most R rows runs the layers as
 * they are. Results equal layer-by-layer execution within float rounding (oneDNN may pick another kernel for another
 * number of rows, as it does for another batch size; tested).
 * <p>
 * Measured on the seed MLP (BENCHMARKS.md): oneDNN's matmuls ran 324.5k rows/s at 1,024 rows against 330-332k at
 * 128-512 rows. The memory planner keeps the chain's input and every intermediate value alive until its last layer
 * ({@link #liveUntil}): rows of a later chunk must not be overwritten by an earlier chunk's outputs.
 * {@code -Dkiln.onednn.noDenseChain=true} runs such layers one by one.
 */
final class DenseChainKernel implements Kernel {
    static final int CACHE_BUDGET = 1 << 20;
    private static final String DISABLE = "kiln.onednn.noDenseChain";

    private final DnnlDenseKernel[] layers;
    private final Slot x;
    private final int inputWidth;
    private final long chunk;
    final String label;

    private DenseChainKernel(DnnlDenseKernel[] layers, Slot x, String label) {
        this.layers = layers;
        this.x = x;
        this.inputWidth = layers[0].inputWidth();
        long bytesPerRow = 4L * inputWidth;
        for (DnnlDenseKernel layer : layers) {
            bytesPerRow += 4L * layer.outputWidth();
        }
        this.chunk = chunkRows(bytesPerRow);
        this.label = label;
    }

    /** Most rows per chunk: as many as fit the cache budget, a multiple of 16, at least 64. */
    static long chunkRows(long bytesPerRow) {
        long forced = Long.getLong("kiln.onednn.denseChainRows", 0);
        return forced > 0 ? forced : Math.max(64, (CACHE_BUDGET / Math.max(1, bytesPerRow)) / 16 * 16);
    }

    long chunk() {
        return chunk;
    }

    /**
     * The runs of dense layers to chain in {@code graph}, in schedule order: two or more, each consuming the previous
     * one's output where nothing else does (and it is not a graph output), over a batch-first input. Empty when
     * oneDNN is off or dense chains are switched off.
     */
    static List<List<Node>> runs(Graph graph) {
        if (!Dnnl.enabled() || Boolean.getBoolean(DISABLE)) {
            return new ArrayList<>();
        }
        return DnnlChainKernel.runs(graph, DenseChainKernel::chainable, run -> true);
    }

    private static boolean chainable(Node node) {
        if (!node.op().equals(OpRegistry.DENSE) || node.outputs().size() != 1) {
            return false;
        }
        dev.kiln.engine.tensor.Shape shape = node.input(0).type().shape();
        return shape.rank() >= 2 && shape.dim(0).isSymbolic();
    }

    /** The chain over {@code steps} (one run), owning their kernels; null when a layer is not on oneDNN. */
    static DenseChainKernel create(List<ScheduledNode> steps) {
        DnnlDenseKernel[] layers = new DnnlDenseKernel[steps.size()];
        for (int i = 0; i < layers.length; i++) {
            if (!(steps.get(i).kernel() instanceof DnnlDenseKernel dense)) {
                return null;
            }
            layers[i] = dense;
        }
        String label = "dense chain " + steps.stream().map(s -> s.node().name() == null ? s.node().op() : s.node().name())
                .collect(Collectors.joining(" -> "));
        return new DenseChainKernel(layers, steps.get(0).inputs()[0], label);
    }

    /** The chunk starts of the last batch size run (see {@link #chunkStarts}). */
    private long plannedRows = -1;
    private long[] planned;

    @Override
    public void run(long batch) {
        long rows = inputWidth == 0 ? 0 : x.elementCount(batch) / inputWidth;
        if (rows <= chunk) {
            for (DnnlDenseKernel layer : layers) {
                layer.run(batch);
            }
            return;
        }
        if (rows != plannedRows) {
            // Planned once per batch size: the run itself allocates nothing.
            planned = chunkStarts(rows, chunk);
            plannedRows = rows;
        }
        long[] starts = planned;
        for (int c = 0; c + 1 < starts.length; c++) {
            for (DnnlDenseKernel layer : layers) {
                layer.runRows(starts[c], starts[c + 1] - starts[c]);
            }
        }
    }

    /**
     * Where the chunks of {@code rows} rows start, with {@code rows} last: equal chunks of a multiple of 16 rows each
     * (1,024 rows run as 4 x 256, not 3 x 288 + 160), the last one shorter, and no chunk under 16 rows (4,897 rows in
     * chunks of 288 would leave 1, which would take a much slower matrix-vector kernel: the chunk before takes it).
     */
    static long[] chunkStarts(long rows, long chunk) {
        long chunks = (rows + chunk - 1) / chunk;
        long size = ((rows + chunks - 1) / chunks + 15) / 16 * 16;
        java.util.List<Long> starts = new java.util.ArrayList<>();
        long first = 0;
        while (first < rows) {
            starts.add(first);
            long count = Math.min(size, rows - first);
            if (rows - first - count < 16) {
                count = rows - first;
            }
            first += count;
        }
        starts.add(rows);
        return starts.stream().mapToLong(Long::longValue).toArray();
    }

    @Override
    public void close() {
        for (DnnlDenseKernel layer : layers) {
            layer.close();
        }
    }
}
