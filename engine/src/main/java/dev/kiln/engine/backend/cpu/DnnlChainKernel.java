package dev.kiln.engine.backend.cpu;

import dev.kiln.engine.KilnException;
import dev.kiln.engine.backend.Kernel;
import dev.kiln.engine.backend.Slot;
import dev.kiln.engine.ir.Attributes;
import dev.kiln.engine.ir.Graph;
import dev.kiln.engine.ir.Node;
import dev.kiln.engine.ir.Value;
import dev.kiln.engine.ops.Activation;
import dev.kiln.engine.ops.Conv2dOp;
import dev.kiln.engine.ops.MaxPool2dOp;
import dev.kiln.engine.ops.OpRegistry;
import dev.kiln.engine.ops.ReduceOp;
import org.bytedeco.dnnl.dnnl_memory;
import org.bytedeco.dnnl.dnnl_memory_desc;
import org.bytedeco.dnnl.dnnl_primitive_attr;
import org.bytedeco.dnnl.dnnl_primitive_desc;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.PointerPointer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;

import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_BIAS;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DST;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_FROM;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_SRC;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_TO;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_WEIGHTS;
import static org.bytedeco.dnnl.global.dnnl.dnnl_a;
import static org.bytedeco.dnnl.global.dnnl.dnnl_eltwise_relu;
import static org.bytedeco.dnnl.global.dnnl.dnnl_format_tag_any;
import static org.bytedeco.dnnl.global.dnnl.dnnl_forward_inference;
import static org.bytedeco.dnnl.global.dnnl.dnnl_goihw;
import static org.bytedeco.dnnl.global.dnnl.dnnl_memory_desc_equal;
import static org.bytedeco.dnnl.global.dnnl.dnnl_memory_set_data_handle;
import static org.bytedeco.dnnl.global.dnnl.dnnl_nChw16c;
import static org.bytedeco.dnnl.global.dnnl.dnnl_nchw;
import static org.bytedeco.dnnl.global.dnnl.dnnl_nhwc;
import static org.bytedeco.dnnl.global.dnnl.dnnl_oihw;
import static org.bytedeco.dnnl.global.dnnl.dnnl_pooling_avg_exclude_padding;
import static org.bytedeco.dnnl.global.dnnl.dnnl_pooling_forward_primitive_desc_create;
import static org.bytedeco.dnnl.global.dnnl.dnnl_pooling_max;
import static org.bytedeco.dnnl.global.dnnl.dnnl_primitive_desc_destroy;
import static org.bytedeco.dnnl.global.dnnl.dnnl_primitive_desc_query;
import static org.bytedeco.dnnl.global.dnnl.dnnl_query_dst_md;
import static org.bytedeco.dnnl.global.dnnl.dnnl_query_impl_info_str;
import static org.bytedeco.dnnl.global.dnnl.dnnl_query_src_md;
import static org.bytedeco.dnnl.global.dnnl.dnnl_reorder_primitive_desc_create;

/**
 * A chain of image layers (convolutions with or without relu, max pooling, the global average pool) run as one oneDNN
 * pipeline in oneDNN's blocked layouts, depth first over chunks of images.
 *
 * <p>Why: run node by node, each layer reads and writes Kiln's NCHW layout over the whole batch, so a convolution
 * with few channels pays for oneDNN's reorders (or runs as im2col + sgemm), and every intermediate value (the
 * reference CNN's first convolution writes 25 KB per image) goes out to memory and back. In the chain the values
 * between layers stay in the layout oneDNN picked for them, reorders happen only where a layer needs another one, and
 * a chunk of images ({@link #chunkRows}, sized so the chunk's intermediates stay in cache) goes through every layer
 * before the next chunk starts. Measured on the reference CNN at batch 256: 5.3 ms node by node, 2.1 ms as a chain
 * (BENCHMARKS.md).
 *
 * <p>Exactness: oneDNN's relu and max pooling drop NaN, where Kiln (like PyTorch) propagates it. Inside the chain
 * every value is finite when the input is finite and no layer can overflow; a bound on each layer's output magnitude
 * ({@code |out| <= |in| * max_filter(sum |w|) + max |b|}, pools never grow it) is kept from the weights, giving the
 * largest input magnitude for which every layer stays below {@link #LIMIT} ({@link #inputBound}), and each batch's
 * input is checked against it in one pass. A batch with a NaN or infinite input, or one large enough that a layer
 * might overflow, runs node by node through the ordinary kernels instead ({@link #runNodeByNode}), which give the
 * exact result.
 */
final class DnnlChainKernel extends DnnlKernel {
    private static final Logger LOG = LoggerFactory.getLogger(DnnlChainKernel.class);
    /** Switch for A/B measurements: {@code -Dkiln.onednn.noChain=true} runs every layer node by node. */
    static final String DISABLE = "kiln.onednn.noChain";
    /** Images per chunk; absent or 0 picks from {@link #CACHE_BUDGET}. */
    static final String CHUNK_ROWS = "kiln.onednn.chainRows";
    /** Bytes of intermediate values one chunk may hold (NCHW sizes, doubled for blocked layouts' channel padding). */
    static final long CACHE_BUDGET = 2L << 20;
    /** The largest bound on any layer's output for which the chain runs; far below Float.MAX_VALUE (3.4e38). */
    static final double LIMIT = 1e30;

    /** Input layouts offered to a pooling that would otherwise run oneDNN's reference kernel, in order. */
    private static final int[] POOL_LAYOUTS = {dnnl_nChw16c, dnnl_nhwc, dnnl_nchw};

    private final List<ScheduledNode> steps;
    private final Slot x;
    private final Slot y;
    private final long xPerImage;
    private final long yPerImage;
    private final ByteBuffer xBytes;
    private final int xByteOffset;
    private final long xAddress;
    private final long yAddress;
    private final double[] gain;
    private final double[] offset;
    /** The largest input magnitude for which {@link #staysFinite} holds (negative when none: NaN weights). */
    private final float inputBound;
    private final long chunk;
    private final AddressPointer inAt = new AddressPointer(0);
    private final AddressPointer outAt = new AddressPointer(0);
    private final dnnl_memory_desc[] weightDescs;
    private final dnnl_memory[] weights;
    private final dnnl_memory_desc[] biasDescs;
    private final dnnl_memory[] biases;
    private final String label;
    private long fallbacks;
    /** Set when oneDNN could not plan the chain for some batch size: every batch then runs node by node. */
    private boolean disabled;

    /**
     * The runs of nodes to chain in {@code graph}, in schedule order: two or more chainable nodes, at least one a
     * convolution, each consuming the previous one's output where nothing else does (and the value is not a graph
     * output); then the dense chains ({@link DenseChainKernel#runs}). Empty when oneDNN is off or chains are switched
     * off. Decided from the graph alone, before memory is planned, so that the planner can keep each chain's input
     * alive while the chain runs ({@link #liveUntil}).
     */
    static List<List<Node>> runs(Graph graph) {
        List<List<Node>> runs = new ArrayList<>();
        if (Dnnl.enabled() && !Boolean.getBoolean(DISABLE)) {
            runs.addAll(runs(graph, n -> chainable(graph, n), run -> run.stream().anyMatch(n -> n.op().equals(OpRegistry.CONV2D))));
        }
        runs.addAll(DenseChainKernel.runs(graph));
        return runs;
    }

    /**
     * The longest runs of compute nodes, in schedule order, that are each {@code chainable} and consume the previous
     * one's output where nothing else does (and it is not a graph output): those of two or more nodes that {@code keep}
     * accepts. Shared by layer chains and {@link DenseChainKernel}.
     */
    static List<List<Node>> runs(Graph graph, java.util.function.Predicate<Node> chainable, java.util.function.Predicate<List<Node>> keep) {
        List<List<Node>> runs = new ArrayList<>();
        List<Node> compute = graph.nodes().stream()
                .filter(n -> !CpuLoadedModel.isSource(n) && !OpRegistry.get(n.op()).aliasesInput()).toList();
        int i = 0;
        while (i < compute.size()) {
            int end = i + 1;
            if (chainable.test(compute.get(i))) {
                while (end < compute.size() && chainable.test(compute.get(end)) && feeds(graph, compute.get(end - 1), compute.get(end))) {
                    end++;
                }
                List<Node> run = compute.subList(i, end);
                if (run.size() >= 2 && keep.test(run)) {
                    runs.add(List.copyOf(run));
                }
            }
            i = end;
        }
        return runs;
    }

    /**
     * Each run's input, kept alive until its last node ran: chunk k's output must not land on chunk k+1's input. A
     * dense chain runs every layer per chunk, so its intermediate values stay alive too.
     */
    static Map<Value, Node> liveUntil(Graph graph, List<List<Node>> runs) {
        Map<Node, Integer> position = new IdentityHashMap<>();
        for (Node n : graph.nodes()) {
            position.put(n, position.size());
        }
        Map<Value, Node> live = new IdentityHashMap<>();
        for (List<Node> run : runs) {
            Node last = run.get(run.size() - 1);
            List<Value> values = new ArrayList<>();
            values.add(run.get(0).input(0));
            if (run.get(0).op().equals(OpRegistry.DENSE)) {
                run.subList(0, run.size() - 1).forEach(n -> values.add(n.output()));
            }
            // A value may feed two runs (a convolution chain's and a dense chain's input): it lives until the later end.
            for (Value v : values) {
                live.merge(v, last, (a, b) -> position.get(a) >= position.get(b) ? a : b);
            }
        }
        return live;
    }

    /**
     * The schedule with each of {@code runs} replaced by one chain, whose fallback is the run's own kernels; steps
     * outside runs, and runs oneDNN cannot chain well, pass through. Wraps kernels for the profile.
     */
    static List<Kernel> fuse(List<ScheduledNode> schedule, List<List<Node>> runs, long capacity) {
        List<Kernel> out = new ArrayList<>(schedule.size());
        try {
            fuseInto(out, schedule, runs, capacity);
        } catch (RuntimeException | Error e) {
            // Chains built so far close the kernels they took; the caller closes every step (close is idempotent).
            out.forEach(Kernel::close);
            throw e;
        }
        return out;
    }

    private static void fuseInto(List<Kernel> out, List<ScheduledNode> schedule, List<List<Node>> runs, long capacity) {
        Map<Node, List<Node>> byFirst = new IdentityHashMap<>();
        runs.forEach(r -> byFirst.put(r.get(0), r));
        int i = 0;
        while (i < schedule.size()) {
            List<Node> run = byFirst.get(schedule.get(i).node());
            if (run == null || i + run.size() > schedule.size()) {
                out.add(KernelProfile.wrap(schedule.get(i).node(), schedule.get(i).kernel()));
                i++;
                continue;
            }
            List<ScheduledNode> steps = schedule.subList(i, i + run.size());
            for (int k = 0; k < run.size(); k++) {
                if (steps.get(k).node() != run.get(k)) {
                    throw new IllegalStateException("The schedule does not follow the chain " + run);
                }
            }
            if (run.get(0).op().equals(OpRegistry.DENSE)) {
                DenseChainKernel dense = DenseChainKernel.create(steps);
                if (dense != null) {
                    out.add(KernelProfile.wrap(dense.label, dense));
                } else {
                    steps.forEach(s -> out.add(KernelProfile.wrap(s.node(), s.kernel())));
                }
                i += run.size();
                continue;
            }
            DnnlChainKernel chain = !overlaps(steps.get(0).inputs()[0], steps.get(steps.size() - 1).outputs()[0], capacity) ? tryCreate(steps) : null;
            if (chain != null) {
                out.add(KernelProfile.wrap(chain.label, chain));
            } else {
                steps.forEach(s -> out.add(KernelProfile.wrap(s.node(), s.kernel())));
            }
            i += run.size();
        }
    }

    /**
     * Whether {@code node} can be a layer of a chain: one of the chain's ops over a batch of images (input and output
     * [batch, C, H, W] with the batch axis exactly the batch: chunks are whole images), and, for a convolution, no
     * activation or relu, a geometry oneDNN runs safely, and static weights (read once, for the bound and the
     * blocked copy).
     */
    static boolean chainable(Graph graph, Node node) {
        if (node.outputs().size() != 1 || node.inputs().isEmpty() || !imageBatch(node.input(0).type().shape())
                || !(imageBatch(node.output().type().shape()) || node.op().equals(OpRegistry.REDUCE_MEAN) && batchFirst(node.output().type().shape()))) {
            return false;
        }
        dev.kiln.engine.tensor.Shape x = node.input(0).type().shape();
        switch (node.op()) {
            case OpRegistry.CONV2D: {
                Activation a = Activation.fromName(node.attributes().getString("activation", "none"));
                Conv2dOp.Geometry g = Conv2dOp.geometry(x, node.input(1).type().shape(), node.attributes());
                boolean staticParameters = node.inputs().stream().skip(1).allMatch(v -> CpuBackend.isFixed(graph, v));
                return (a == Activation.NONE || a == Activation.RELU) && DnnlConvKernel.geometryFits(g) && staticParameters;
            }
            case OpRegistry.MAX_POOL2D:
                return DnnlMaxPoolKernel.padding(MaxPool2dOp.geometry(node.op(), x, node.attributes())) != null;
            case OpRegistry.REDUCE_MEAN: {
                boolean[] reduced = ReduceOp.reducedAxes(x, node.attributes().getLongs("axes"));
                return !reduced[0] && !reduced[1] && reduced[2] && reduced[3];
            }
            default:
                return false;
        }
    }

    /** [batch, C, H, W]: the batch symbol itself first, concrete sizes after. */
    private static boolean imageBatch(dev.kiln.engine.tensor.Shape shape) {
        return shape.rank() == 4 && batchFirst(shape);
    }

    /** The batch symbol itself (not a multiple of it) first, concrete sizes after. */
    private static boolean batchFirst(dev.kiln.engine.tensor.Shape shape) {
        if (shape.rank() < 1 || !shape.dim(0).isSymbolic() || shape.dim(0).factor() != 1) {
            return false;
        }
        for (int i = 1; i < shape.rank(); i++) {
            if (shape.dim(i).isSymbolic()) {
                return false;
            }
        }
        return true;
    }

    static boolean feeds(Graph graph, Node from, Node to) {
        Value v = from.output();
        return to.input(0) == v && !graph.isOutput(v) && graph.users(v).size() == 1;
    }

    /**
     * Whether the chain's output shares memory with its input, where chunks would clash; cannot happen when memory
     * was planned with {@link #liveUntil}, checked anyway (such a run stays node by node).
     */
    private static boolean overlaps(Slot x, Slot y, long capacity) {
        if (x.buffer() != y.buffer()) {
            return false;
        }
        long xEnd = x.offset() + x.type().shape().elementCount(capacity);
        long yEnd = y.offset() + y.type().shape().elementCount(capacity);
        return x.offset() < yEnd && y.offset() < xEnd;
    }

    private static DnnlChainKernel tryCreate(List<ScheduledNode> run) {
        DnnlChainKernel chain = new DnnlChainKernel(List.copyOf(run));
        try {
            chain.prepare();
            return chain;
        } catch (UnsupportedOperationException | KilnException e) {
            chain.closeChainOnly();
            if (e instanceof KilnException k && k.code() == dev.kiln.engine.ErrorCode.DEVICE_OUT_OF_MEMORY) {
                throw e;
            }
            // oneDNN cannot run this chain well (only a reference implementation, or a layout it refuses): the
            // layers run node by node, as they would without the chain.
            LOG.debug("Layers {} run node by node: {}", chain.label, e.getMessage());
            return null;
        } catch (RuntimeException | Error e) {
            chain.closeChainOnly();
            throw e;
        }
    }

    private DnnlChainKernel(List<ScheduledNode> steps) {
        this.steps = steps;
        this.x = steps.get(0).inputs()[0];
        this.y = steps.get(steps.size() - 1).outputs()[0];
        this.xPerImage = x.elementCount(1);
        this.yPerImage = y.elementCount(1);
        this.xBytes = BlasDenseKernel.bytes(x);
        this.xByteOffset = x.offset() * 4;
        this.xAddress = address(x);
        this.yAddress = address(y);
        int n = steps.size();
        this.gain = new double[n];
        this.offset = new double[n];
        this.weightDescs = new dnnl_memory_desc[n];
        this.weights = new dnnl_memory[n];
        this.biasDescs = new dnnl_memory_desc[n];
        this.biases = new dnnl_memory[n];
        long intermediateFloats = 0;
        for (int i = 0; i < n; i++) {
            ScheduledNode s = steps.get(i);
            gain[i] = 1;
            if (s.node().op().equals(OpRegistry.CONV2D)) {
                bound(i, s);
            }
            intermediateFloats += s.outputs()[0].elementCount(1);
        }
        this.inputBound = inputBound(gain, offset);
        long configured = Long.getLong(CHUNK_ROWS, 0L);
        this.chunk = configured > 0 ? configured : chunkRows(intermediateFloats);
        this.label = steps.stream().map(s -> s.node().op()).collect(Collectors.joining(" -> ", "chain ", " "))
                + steps.get(0).node().name() + " .. " + steps.get(n - 1).node().name() + " (" + getClass().getSimpleName() + ", " + chunk + " images per chunk)";
    }

    /** Images per chunk: as many as keep {@link #CACHE_BUDGET}, a power of two from 1 to 64. */
    static long chunkRows(long intermediateFloatsPerImage) {
        long fit = CACHE_BUDGET / Math.max(1, intermediateFloatsPerImage * 4 * 2);
        long rows = 1;
        while (rows * 2 <= Math.min(64, fit)) {
            rows *= 2;
        }
        return rows;
    }

    /** A convolution's output bound: gain = the largest sum of |w| over one filter, offset = the largest |b|. */
    private void bound(int i, ScheduledNode s) {
        Slot w = s.inputs()[1];
        int filters = (int) w.size(0, 1);
        int perFilter = w.elementCount(1) / filters;
        double worst = 0;
        for (int m = 0; m < filters; m++) {
            double sum = 0;
            for (int k = 0; k < perFilter; k++) {
                sum += Math.abs(w.get(m * perFilter + k));
            }
            worst = Math.max(worst, sum);
        }
        double b = 0;
        if (s.inputs().length > 2) {
            for (int m = 0; m < filters; m++) {
                b = Math.max(b, Math.abs(s.inputs()[2].get(m)));
            }
        }
        // NaN or infinite weights make the bound NaN or infinite: every batch then runs node by node.
        gain[i] = worst;
        offset[i] = b;
    }

    /** Plain weight and bias memories shared by all plans, then a plan for one chunk (fails early if oneDNN cannot). */
    private void prepare() {
        for (int i = 0; i < steps.size(); i++) {
            ScheduledNode s = steps.get(i);
            if (!s.node().op().equals(OpRegistry.CONV2D)) {
                continue;
            }
            Conv2dOp.Geometry g = geometry(s);
            weightDescs[i] = shared.desc(DnnlConvKernel.weightDims(g), g.groups() == 1 ? dnnl_oihw : dnnl_goihw);
            weights[i] = shared.memory(weightDescs[i], address(s.inputs()[1]));
            if (s.inputs().length > 2) {
                biasDescs[i] = shared.desc(new long[] {g.m()}, dnnl_a);
                biases[i] = shared.memory(biasDescs[i], address(s.inputs()[2]));
            }
        }
        Dnnl.applyThreads();
        plan(chunk);
    }

    private static Conv2dOp.Geometry geometry(ScheduledNode s) {
        return Conv2dOp.geometry(s.inputs()[0].type().shape(), s.inputs()[1].type().shape(), s.node().attributes());
    }

    /**
     * The largest input magnitude m for which every layer's bound stays at most {@link #LIMIT}: layer i's bound is
     * m * G_i + O_i (G_i, O_i composed from the layers up to i, each affine in the previous one's bound), so
     * m = min over i of (LIMIT - O_i) / G_i. Every layer, not only the last: a layer may overflow and a later one with
     * small weights bring the bound back down, while the NaN made in between would be dropped by oneDNN. -1 when the
     * weights are not finite.
     */
    static float inputBound(double[] gain, double[] offset) {
        double g = 1;
        double o = 0;
        double bound = Float.MAX_VALUE;
        for (int i = 0; i < gain.length; i++) {
            g *= gain[i];
            o = o * gain[i] + offset[i];
            if (!(o <= LIMIT) || !Double.isFinite(g)) {
                return -1f;
            }
            if (g > 0) {
                bound = Math.min(bound, (LIMIT - o) / g);
            }
        }
        return (float) bound;
    }

    /** Whether a batch whose largest input magnitude is {@code maxAbs} keeps every value of every layer finite. */
    boolean staysFinite(float maxAbs) {
        double b = maxAbs;
        for (int i = 0; i < gain.length; i++) {
            b = b * gain[i] + offset[i];
            if (!(b <= LIMIT)) {
                return false;
            }
        }
        return true;
    }

    /** Batches that ran node by node (non-finite or too large input), for tests and profiles. */
    long fallbacks() {
        return fallbacks;
    }

    long chunk() {
        return chunk;
    }

    List<ScheduledNode> steps() {
        return steps;
    }

    @Override
    public void run(long batch) {
        long n = x.size(0, batch);
        if (n == 0) {
            return;
        }
        if (disabled || !FiniteCheck.allWithin(xBytes, xByteOffset, (int) (n * xPerImage), inputBound)) {
            runNodeByNode(batch);
            return;
        }
        Dnnl.applyThreads();
        // Both plans first (the one for full chunks, the one for a shorter last chunk): a size oneDNN cannot chain
        // well sends the batch, and every later one, node by node instead of failing it.
        Plan full = n >= chunk ? planOrNull(chunk) : null;
        Plan tail = n % chunk != 0 ? planOrNull(n % chunk) : null;
        if (disabled) {
            runNodeByNode(batch);
            return;
        }
        for (long start = 0; start < n; start += chunk) {
            Plan plan = n - start >= chunk ? full : tail;
            // Memory objects are rebound to this chunk's rows; oneDNN's CPU stream runs each step before returning,
            // and the wait below orders the next rebinding after it.
            int status = dnnl_memory_set_data_handle(plan.input, inAt.at(xAddress + 4 * start * xPerImage));
            if (status == 0) {
                status = dnnl_memory_set_data_handle(plan.output, outAt.at(yAddress + 4 * start * yPerImage));
            }
            if (status != 0) {
                Dnnl.check(status, "moving a layer chain to rows " + start + ".. (" + plan.description + ")");
            }
            submit(plan, "running a layer chain");
            await(plan, "running a layer chain");
        }
    }

    private void runNodeByNode(long batch) {
        fallbacks++;
        for (ScheduledNode s : steps) {
            s.kernel().run(batch);
        }
    }

    /** The plan for {@code rows}, or null (and the chain switched off) when oneDNN cannot chain at that size. */
    private Plan planOrNull(long rows) {
        try {
            return plan(rows);
        } catch (UnsupportedOperationException | KilnException e) {
            if (e instanceof KilnException k && k.code() == dev.kiln.engine.ErrorCode.DEVICE_OUT_OF_MEMORY) {
                throw e;
            }
            disabled = true;
            LOG.warn("Layers {} run node by node from now on: at {} images, {}", label, rows, e.getMessage());
            return null;
        }
    }

    @Override
    protected void build(Plan plan, long rows) {
        plan.description = label.substring(0, label.indexOf(" (")) + " over " + rows + " images";
        dnnl_memory_desc current = plan.desc(dims(x, rows), dnnl_nchw);
        plan.input = plan.memory(current, xAddress);
        dnnl_memory currentMemory = plan.input;
        dnnl_memory_desc plainOut = plan.desc(new long[] {rows, y.type().shape().size(1, 1), y.rank() == 4 ? y.size(2, 1) : 1, y.rank() == 4 ? y.size(3, 1) : 1}, dnnl_nchw);
        for (int i = 0; i < steps.size(); i++) {
            ScheduledNode s = steps.get(i);
            dnnl_primitive_desc pd = primitive(plan, i, s, rows, current, false);
            if (isReference(pd) && s.node().op().equals(OpRegistry.CONV2D)) {
                // The layout the previous layer chose forces oneDNN's reference convolution (100x slower): let this
                // one pick its own input layout, and reorder into it.
                dnnl_primitive_desc_destroy(pd);
                pd = primitive(plan, i, s, rows, current, true);
            }
            for (int k = 0; k < POOL_LAYOUTS.length && isReference(pd) && !s.node().op().equals(OpRegistry.CONV2D); k++) {
                // Pooling takes its input's layout as given: offer the layouts its fast kernels read.
                dnnl_primitive_desc_destroy(pd);
                pd = primitive(plan, i, s, rows, plan.desc(dims(s.inputs()[0], rows), POOL_LAYOUTS[k]), false);
            }
            if (isReference(pd)) {
                String impl = implementation(pd);
                dnnl_primitive_desc_destroy(pd);
                throw new UnsupportedOperationException("oneDNN has only its reference implementation (" + impl + ") for "
                        + s.node().describe() + " in a chain");
            }
            // Until plan.create takes it over, the descriptor is this loop's to free, also when a step below fails.
            boolean handedOver = false;
            dnnl_memory_desc dst;
            dnnl_memory dstMemory;
            try {
                dnnl_memory_desc wanted = plan.query(pd, dnnl_query_src_md);
                if (dnnl_memory_desc_equal(wanted, current) == 0) {
                    dnnl_memory reordered = plan.scratch(wanted);
                    reorder(plan, current, currentMemory, wanted, reordered);
                    currentMemory = reordered;
                }
                dst = plan.query(pd, dnnl_query_dst_md);
                boolean last = i == steps.size() - 1;
                dstMemory = last && dnnl_memory_desc_equal(dst, plainOut) != 0 ? (plan.output = plan.memory(plainOut, yAddress)) : plan.scratch(dst);
                dnnl_memory packed = s.node().op().equals(OpRegistry.CONV2D) ? plan.weightsFor(pd, weightDescs[i], weights[i], stream) : null;
                handedOver = true;
                plan.create(pd);
                plan.arguments(DNNL_ARG_SRC, currentMemory, DNNL_ARG_WEIGHTS, packed, DNNL_ARG_BIAS, biases[i], DNNL_ARG_DST, dstMemory);
            } finally {
                if (!handedOver) {
                    dnnl_primitive_desc_destroy(pd);
                }
            }
            current = dst;
            currentMemory = dstMemory;
        }
        if (plan.output == null) {
            plan.output = plan.memory(plainOut, yAddress);
            reorder(plan, current, currentMemory, plainOut, plan.output);
        }
    }

    private static long[] dims(Slot slot, long rows) {
        return new long[] {rows, slot.size(1, 1), slot.size(2, 1), slot.size(3, 1)};
    }

    /** The primitive descriptor of step {@code i} reading {@code src} (or, when {@code anySource}, a layout of its choice). */
    private dnnl_primitive_desc primitive(Plan plan, int i, ScheduledNode s, long rows, dnnl_memory_desc src, boolean anySource) {
        Attributes a = s.node().attributes();
        Slot in = s.inputs()[0];
        Slot out = s.outputs()[0];
        String what = s.node().describe() + " in a chain over " + rows + " images";
        switch (s.node().op()) {
            case OpRegistry.CONV2D: {
                Conv2dOp.Geometry g = geometry(s);
                dnnl_memory_desc source = anySource ? plan.desc(dims(in, rows), dnnl_format_tag_any) : src;
                dnnl_memory_desc dst = plan.desc(new long[] {rows, g.m(), g.oh(), g.ow()}, dnnl_format_tag_any);
                Activation act = Activation.fromName(a.getString("activation", "none"));
                dnnl_primitive_attr attr = act == Activation.RELU ? plan.eltwiseAttributes(dnnl_eltwise_relu) : null;
                return DnnlConvKernel.describe(plan, g, source, biasDescs[i], dst, attr, () -> "creating the convolution of " + what);
            }
            case OpRegistry.MAX_POOL2D: {
                MaxPool2dOp.Geometry g = MaxPool2dOp.geometry(s.node().op(), in.type().shape(), a);
                int[] pad = DnnlMaxPoolKernel.padding(g);
                dnnl_primitive_desc pd = new dnnl_primitive_desc();
                dnnl_memory_desc dst = plan.desc(new long[] {rows, g.c(), g.oh(), g.ow()}, dnnl_format_tag_any);
                Dnnl.check(dnnl_pooling_forward_primitive_desc_create(pd, Dnnl.engine(), dnnl_forward_inference, dnnl_pooling_max, src, dst,
                        new long[] {g.sh(), g.sw()}, new long[] {g.kh(), g.kw()}, new long[] {0, 0},
                        new long[] {g.pt(), g.pl()}, new long[] {pad[0], pad[1]}, null), () -> "creating the max pooling of " + what);
                return pd;
            }
            case OpRegistry.REDUCE_MEAN: {
                long h = in.size(2, 1);
                long w = in.size(3, 1);
                dnnl_primitive_desc pd = new dnnl_primitive_desc();
                dnnl_memory_desc dst = plan.desc(new long[] {rows, in.size(1, 1), 1, 1}, dnnl_format_tag_any);
                Dnnl.check(dnnl_pooling_forward_primitive_desc_create(pd, Dnnl.engine(), dnnl_forward_inference, dnnl_pooling_avg_exclude_padding,
                        src, dst, new long[] {1, 1}, new long[] {h, w}, new long[] {0, 0}, new long[] {0, 0}, new long[] {0, 0}, null),
                        () -> "creating the global average pool of " + what);
                return pd;
            }
            default:
                throw new UnsupportedOperationException(s.node().op() + " in a oneDNN chain");
        }
    }

    private static void reorder(Plan plan, dnnl_memory_desc from, dnnl_memory fromMemory, dnnl_memory_desc to, dnnl_memory toMemory) {
        dnnl_primitive_desc pd = new dnnl_primitive_desc();
        Dnnl.check(dnnl_reorder_primitive_desc_create(pd, from, Dnnl.engine(), to, Dnnl.engine(), null), "planning a reorder between chain layers");
        plan.create(pd);
        plan.arguments(DNNL_ARG_FROM, fromMemory, DNNL_ARG_TO, toMemory);
    }

    static String implementation(dnnl_primitive_desc pd) {
        try (PointerPointer<BytePointer> info = new PointerPointer<>(1)) {
            if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, info) != 0 || info.get(0) == null) {
                return "unknown";
            }
            return info.get(BytePointer.class, 0).getString();
        }
    }

    private static boolean isReference(dnnl_primitive_desc pd) {
        return implementation(pd).startsWith("ref");
    }

    /** Frees the chain's own oneDNN objects only: the fallback kernels stay with the caller (construction failed). */
    private void closeChainOnly() {
        super.close();
    }

    @Override
    public void close() {
        super.close();
        for (ScheduledNode s : steps) {
            s.kernel().close();
        }
    }
}
