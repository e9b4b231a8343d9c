package dev.kiln.engine.backend.cuda;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;
import dev.kiln.engine.backend.cuda.CudaApi.ArgKind;
import dev.kiln.engine.ir.Graph;
import dev.kiln.engine.ir.Node;
import dev.kiln.engine.ir.Value;
import dev.kiln.engine.ops.Activation;
import dev.kiln.engine.ops.Conv2dOp;
import dev.kiln.engine.ops.DenseOp;
import dev.kiln.engine.ops.MaxPool2dOp;
import dev.kiln.engine.ops.OpRegistry;
import dev.kiln.engine.ops.ReduceOp;
import dev.kiln.engine.ops.TransposeOp;
import dev.kiln.engine.plan.MemoryPlan;
import dev.kiln.engine.tensor.Shape;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Turns a compiled graph into GPU steps over one executor arena: GEMMs (dense layers with their bias and relu fused,
 * matmuls as strided batches) and launches of Kiln's kernels for everything else, with every address fixed and every
 * size a {@link Lin} of the batch. Shape tables the kernels index with go into one small {@code meta} block the
 * executor uploads once. Ops without a GPU kernel are refused here, at load, naming the op and the node.
 */
final class CudaLowering {
    /** What the GPU runs, and the shape tables it reads. */
    static final class Program {
        final List<Step> steps;
        final long[] meta;
        private final List<CudaApi.Launch> metaLaunches;
        private final List<int[]> metaArgs;

        private Program(List<Step> steps, long[] meta, List<CudaApi.Launch> metaLaunches, List<int[]> metaArgs) {
            this.steps = steps;
            this.meta = meta;
            this.metaLaunches = metaLaunches;
            this.metaArgs = metaArgs;
        }

        /** The shape tables as bytes for the device (little-endian longs); never empty. */
        ByteBuffer metaBytes() {
            ByteBuffer bytes = ByteBuffer.allocateDirect(Math.max(8, meta.length * 8)).order(ByteOrder.LITTLE_ENDIAN);
            for (long v : meta) {
                bytes.putLong(v);
            }
            return bytes.clear();
        }

        /** Points the launches that read shape tables at {@code metaBase}, where {@link #metaBytes} was uploaded. */
        void bindMeta(long metaBase) {
            for (int i = 0; i < metaLaunches.size(); i++) {
                int[] arg = metaArgs.get(i);
                metaLaunches.get(i).set(arg[0], metaBase + 8L * arg[1]);
            }
        }
    }

    /** A pointer argument. */
    private record Ptr(long address) { }

    /** A pointer into the shape tables, at {@code offset} longs. */
    private record Meta(int offset) { }

    private final Graph graph;
    private final MemoryPlan plan;
    private final long arenaBase;
    private final Map<Value, Long> statics;
    private final CudaApi api;
    private final List<Step> steps = new ArrayList<>();
    private final List<Long> meta = new ArrayList<>();
    private final List<CudaApi.Launch> metaLaunches = new ArrayList<>();
    private final List<int[]> metaArgs = new ArrayList<>();

    private CudaLowering(Graph graph, MemoryPlan plan, long arenaBase, Map<Value, Long> statics, CudaApi api) {
        this.graph = graph;
        this.plan = plan;
        this.arenaBase = arenaBase;
        this.statics = statics;
        this.api = api;
    }

    /**
     * Lowers {@code graph} for an arena at {@code arenaBase} laid out by {@code plan}, with the static values at
     * {@code statics} (device addresses). Throws {@link UnsupportedOperationException} for ops without a GPU kernel.
     */
    static Program lower(Graph graph, MemoryPlan plan, long arenaBase, Map<Value, Long> statics, CudaApi api) {
        CudaLowering lowering = new CudaLowering(graph, plan, arenaBase, statics, api);
        for (Node node : graph.nodes()) {
            if (node.op().equals(OpRegistry.CONSTANT) || node.op().equals(OpRegistry.PARAMETER) || OpRegistry.get(node.op()).aliasesInput()) {
                continue;
            }
            lowering.lowerNode(node);
        }
        long[] table = lowering.meta.stream().mapToLong(Long::longValue).toArray();
        return new Program(List.copyOf(lowering.steps), table, lowering.metaLaunches, lowering.metaArgs);
    }

    static boolean isStatic(Node node) {
        return node.op().equals(OpRegistry.CONSTANT) || node.op().equals(OpRegistry.PARAMETER);
    }

    private void lowerNode(Node node) {
        String op = node.op();
        switch (op) {
            case OpRegistry.DENSE -> dense(node);
            case OpRegistry.MATMUL -> matmul(node);
            case OpRegistry.ADD, OpRegistry.SUB, OpRegistry.MUL, OpRegistry.DIV, OpRegistry.POW -> binary(node);
            case OpRegistry.TRANSPOSE -> transpose(node);
            case OpRegistry.SOFTMAX -> softmax(node);
            case OpRegistry.REDUCE_MEAN, OpRegistry.REDUCE_SUM -> reduce(node);
            case OpRegistry.LAYER_NORM -> layerNorm(node);
            case OpRegistry.CONCAT -> concat(node);
            case OpRegistry.SPLIT -> split(node);
            case OpRegistry.CONV2D -> conv2d(node);
            case OpRegistry.MAX_POOL2D, OpRegistry.AVG_POOL2D -> pool(node);
            default -> {
                int code = unaryCode(op);
                if (code < 0 || node.inputs().size() != 1) {
                    throw unsupported(node, "no GPU kernel for op '" + op + "'");
                }
                Value x = node.inputs().get(0);
                launch(node, "kiln_unary", Lin.elements(shape(node.output())), ptr(x), ptr(node.output()), Lin.elements(shape(node.output())), code);
            }
        }
    }

    /** The ops this backend runs, for messages. */
    static final String SUPPORTED = "dense, matmul, add, sub, mul, div, pow, exp, log, sqrt, erf, neg, relu, sigmoid, tanh, gelu, "
            + "transpose, softmax, reduce_mean, reduce_sum, layer_norm, concat, split, conv2d, max_pool2d, avg_pool2d, reshape, identity";

    static int unaryCode(String op) {
        switch (op) {
            case OpRegistry.EXP:
                return 0;
            case OpRegistry.LOG:
                return 1;
            case OpRegistry.SQRT:
                return 2;
            case OpRegistry.ERF:
                return 3;
            case OpRegistry.NEG:
                return 4;
            default:
                for (Activation a : Activation.values()) {
                    if (a != Activation.NONE && a.opName().equals(op)) {
                        return 10 + a.ordinal();
                    }
                }
                return -1;
        }
    }

    private void dense(Node node) {
        Value x = node.inputs().get(0);
        Shape w = shape(node.inputs().get(1));
        long out = w.dim(0).size();
        long in = w.dim(1).size();
        Value y = node.output();
        Lin rows = Lin.elements(shape(x)).divide(in);
        long bias = node.inputs().size() > 2 ? address(node.inputs().get(2)) : 0;
        Activation act = DenseOp.activation(node.attributes());
        boolean fused = act == Activation.NONE || act == Activation.RELU;
        steps.add(new GemmStep(node.name(), api, true, act == Activation.RELU, address(x), address(node.inputs().get(1)), fused ? bias : 0,
                address(y), rows, out, in, Lin.fixed(1), 0, 0, 0));
        if (!fused) {
            // cuBLASLt's GELU epilogue is the tanh approximation; Kiln's gelu is the erf form, so it runs as a kernel.
            Lin n = Lin.elements(shape(y));
            launch(node, "kiln_bias_activate", n, ptr(y), new Ptr(bias), n, (int) out, act.ordinal());
        }
    }

    private void matmul(Node node) {
        Shape a = shape(node.inputs().get(0));
        Shape b = shape(node.inputs().get(1));
        Shape c = shape(node.output());
        long k = concrete(node, a.dim(-1).isSymbolic() ? -1 : a.dim(-1).size(), "the inner dimension");
        long n = concrete(node, b.dim(-1).isSymbolic() ? -1 : b.dim(-1).size(), "the columns of b");
        long pa = address(node.inputs().get(0));
        long pb = address(node.inputs().get(1));
        long pc = address(node.output());
        if (b.rank() == 2 && b.isConcrete()) {
            // [..., M, K] x [K, N]: every row of a against one matrix, one GEMM.
            steps.add(new GemmStep(node.name(), api, false, false, pa, pb, 0, pc, Lin.elements(a).divide(k), n, k, Lin.fixed(1), 0, 0, 0));
            return;
        }
        long m = concrete(node, a.dim(-2).isSymbolic() ? -1 : a.dim(-2).size(), "the rows of a");
        Lin count = Lin.elements(c).divide(m * n);
        boolean sameBatch = a.rank() == b.rank() && a.dims().subList(0, a.rank() - 2).equals(b.dims().subList(0, b.rank() - 2));
        if (sameBatch) {
            steps.add(new GemmStep(node.name(), api, false, false, pa, pb, 0, pc, Lin.fixed(m), n, k, count, m * k, k * n, m * n));
        } else if (a.rank() == 2 && a.isConcrete()) {
            steps.add(new GemmStep(node.name(), api, false, false, pa, pb, 0, pc, Lin.fixed(m), n, k, count, 0, k * n, m * n));
        } else {
            throw unsupported(node, "matmul broadcasting batch axes " + a + " x " + b + " (same batch axes, or a rank-2 operand, are supported)");
        }
    }

    private void binary(Node node) {
        Shape out = shape(node.output());
        int rank = out.rank();
        requireBatchFirst(node, out);
        int metaOffset = meta.size();
        for (int d = 0; d < rank; d++) {
            meta.add(out.dim(d).isSymbolic() ? 0L : out.dim(d).size());
        }
        for (Value input : node.inputs()) {
            Shape s = shape(input);
            int shift = rank - s.rank();
            int sym = s.symbolicAxis();
            if (sym >= 0 && sym + shift != 0) {
                throw unsupported(node, "an operand " + s + " whose batch axis is not the output's first axis");
            }
            long stride = 1;
            long[] strides = new long[rank];
            for (int d = rank - 1; d >= 0; d--) {
                int sd = d - shift;
                if (sd < 0) {
                    strides[d] = 0;
                    continue;
                }
                boolean broadcast = s.dim(sd).isConcrete() && s.dim(sd).size() == 1 && !(out.dim(d).isConcrete() && out.dim(d).size() == 1);
                strides[d] = broadcast ? 0 : stride;
                if (sd > 0) {
                    stride *= s.dim(sd).size();
                }
            }
            for (long v : strides) {
                meta.add(v);
            }
        }
        int code = switch (node.op()) {
            case OpRegistry.ADD -> 0;
            case OpRegistry.SUB -> 1;
            case OpRegistry.MUL -> 2;
            case OpRegistry.DIV -> 3;
            default -> 4;
        };
        Lin n = Lin.elements(out);
        launch(node, "kiln_binary", n, ptr(node.inputs().get(0)), ptr(node.inputs().get(1)), ptr(node.output()), n, code, rank, new Meta(metaOffset));
    }

    private void transpose(Node node) {
        Shape in = shape(node.inputs().get(0));
        Shape out = shape(node.output());
        int[] perm = TransposeOp.permutation(in, node.attributes().getLongs("perm"));
        int rank = in.rank();
        if (in.symbolicAxis() > 0 || in.symbolicAxis() == 0 && perm[0] != 0) {
            throw unsupported(node, "a transpose that moves the batch axis (" + in + " by " + java.util.Arrays.toString(perm) + ")");
        }
        long[] inStrides = new long[rank];
        long stride = 1;
        for (int d = rank - 1; d >= 0; d--) {
            inStrides[d] = stride;
            if (d > 0) {
                stride *= in.dim(d).size();
            }
        }
        int metaOffset = meta.size();
        for (int d = 0; d < rank; d++) {
            meta.add(out.dim(d).isSymbolic() ? 0L : out.dim(d).size());
        }
        for (int d = 0; d < rank; d++) {
            meta.add(inStrides[perm[d]]);
        }
        Lin n = Lin.elements(out);
        launch(node, "kiln_transpose", n, ptr(node.inputs().get(0)), ptr(node.output()), n, rank, new Meta(metaOffset));
    }

    private void softmax(Node node) {
        Shape x = shape(node.inputs().get(0));
        int axis = x.normalizeAxis((int) node.attributes().getLong("axis", -1));
        long length = concrete(node, x, axis, axis);
        long inner = concrete(node, x, axis + 1, x.rank() - 1);
        Lin lines = Lin.elements(x).divide(length);
        launch(node, "kiln_softmax", lines, ptr(node.inputs().get(0)), ptr(node.output()), lines, (int) length, inner);
    }

    private void reduce(Node node) {
        Shape x = shape(node.inputs().get(0));
        boolean[] reduced = ReduceOp.reducedAxes(x, node.attributes().getLongs("axes"));
        int first = -1;
        int last = -1;
        for (int d = 0; d < reduced.length; d++) {
            if (reduced[d]) {
                if (first < 0) {
                    first = d;
                } else if (last != d - 1) {
                    throw unsupported(node, "a reduction over axes that are not next to each other");
                }
                last = d;
            }
        }
        if (first < 0) {
            throw unsupported(node, "a reduction over no axis");
        }
        long length = concrete(node, x, first, last);
        long inner = concrete(node, x, last + 1, x.rank() - 1);
        Lin lines = Lin.elements(x).divide(length);
        float scale = node.op().equals(OpRegistry.REDUCE_MEAN) ? (float) (1.0 / length) : 1f;
        launch(node, "kiln_reduce", lines, ptr(node.inputs().get(0)), ptr(node.output()), lines, (int) length, inner, scale);
    }

    private void layerNorm(Node node) {
        Shape x = shape(node.inputs().get(0));
        long length = concrete(node, x, x.rank() - 1, x.rank() - 1);
        Lin rows = Lin.elements(x).divide(length);
        float epsilon = (float) node.attributes().getDouble("epsilon");
        launch(node, "kiln_layer_norm", rows, ptr(node.inputs().get(0)), ptr(node.inputs().get(1)), ptr(node.inputs().get(2)), ptr(node.output()),
                rows, (int) length, epsilon);
    }

    private void concat(Node node) {
        Shape out = shape(node.output());
        int axis = out.normalizeAxis((int) node.attributes().getLong("axis"));
        long inner = concrete(node, out, axis + 1, out.rank() - 1);
        long outRow = concrete(node, out, axis, axis) * inner;
        long offset = 0;
        for (Value input : node.inputs()) {
            Shape s = shape(input);
            long row = s.dim(axis).size() * inner;
            Lin n = Lin.elements(s);
            launch(node, "kiln_copy_rows", n, ptr(input), ptr(node.output()), n, row, row, 0L, outRow, offset);
            offset += row;
        }
    }

    private void split(Node node) {
        Shape in = shape(node.inputs().get(0));
        int axis = in.normalizeAxis((int) node.attributes().getLong("axis"));
        long inner = concrete(node, in, axis + 1, in.rank() - 1);
        long inRow = concrete(node, in, axis, axis) * inner;
        long offset = 0;
        for (Value output : node.outputs()) {
            Shape s = shape(output);
            long row = s.dim(axis).size() * inner;
            Lin n = Lin.elements(s);
            launch(node, "kiln_copy_rows", n, ptr(node.inputs().get(0)), ptr(output), n, row, inRow, offset, row, 0L);
            offset += row;
        }
    }

    private void conv2d(Node node) {
        Shape x = shape(node.inputs().get(0));
        Conv2dOp.Geometry g = Conv2dOp.geometry(x, shape(node.inputs().get(1)), node.attributes());
        Activation act = Activation.fromName(node.attributes().getString("activation", "none"));
        int metaOffset = meta.size();
        for (long v : new long[] {g.c(), g.h(), g.w(), g.m(), g.kh(), g.kw(), g.sh(), g.sw(), g.pt(), g.pl(), g.dh(), g.dw(), g.groups(), g.oh(), g.ow(),
                act.ordinal()}) {
            meta.add(v);
        }
        long bias = node.inputs().size() > 2 ? address(node.inputs().get(2)) : 0;
        Lin n = Lin.elements(shape(node.output()));
        launch(node, "kiln_conv2d", n, ptr(node.inputs().get(0)), ptr(node.inputs().get(1)), new Ptr(bias), ptr(node.output()), n, new Meta(metaOffset));
    }

    private void pool(Node node) {
        MaxPool2dOp.Geometry g = MaxPool2dOp.geometry(node.op(), shape(node.inputs().get(0)), node.attributes());
        int mode = node.op().equals(OpRegistry.MAX_POOL2D) ? 0 : node.attributes().getLong("count_include_pad", 0) != 0 ? 1 : 2;
        int metaOffset = meta.size();
        for (long v : new long[] {g.h(), g.w(), g.kh(), g.kw(), g.sh(), g.sw(), g.pt(), g.pl(), g.oh(), g.ow()}) {
            meta.add(v);
        }
        Lin n = Lin.elements(shape(node.output()));
        launch(node, "kiln_pool2d", n, ptr(node.inputs().get(0)), ptr(node.output()), n, mode, new Meta(metaOffset));
    }

    /** Prepares a launch: {@link Ptr} and {@link Meta} are pointers, {@link Lin} and Long are 64-bit sizes, Integer int, Float float. */
    private void launch(Node node, String kernel, Lin threads, Object... args) {
        ArgKind[] kinds = new ArgKind[args.length];
        for (int i = 0; i < args.length; i++) {
            Object a = args[i];
            kinds[i] = a instanceof Ptr || a instanceof Meta ? ArgKind.POINTER
                    : a instanceof Lin || a instanceof Long ? ArgKind.LONG
                    : a instanceof Integer ? ArgKind.INT
                    : ArgKind.FLOAT;
        }
        CudaApi.Launch launch = api.prepare(kernel, kinds);
        List<Integer> linArgs = new ArrayList<>();
        List<Lin> linValues = new ArrayList<>();
        for (int i = 0; i < args.length; i++) {
            Object a = args[i];
            if (a instanceof Ptr p) {
                launch.set(i, p.address());
            } else if (a instanceof Meta m) {
                metaLaunches.add(launch);
                metaArgs.add(new int[] {i, m.offset()});
            } else if (a instanceof Lin l) {
                linArgs.add(i);
                linValues.add(l);
            } else if (a instanceof Long l) {
                launch.set(i, l);
            } else if (a instanceof Integer v) {
                launch.set(i, v);
            } else {
                launch.setFloat(i, (Float) a);
            }
        }
        steps.add(new LaunchStep(node.name(), launch, threads, linArgs.stream().mapToInt(Integer::intValue).toArray(), linValues.toArray(new Lin[0])));
    }

    private Ptr ptr(Value value) {
        return new Ptr(address(value));
    }

    /** The device address of {@code value}: its static block, the static block it views, or its place in the arena. */
    long address(Value value) {
        Long s = statics.get(value);
        if (s != null) {
            return s;
        }
        Value root = plan.staticAliases().get(value);
        if (root != null && statics.containsKey(root)) {
            return statics.get(root);
        }
        Integer offset = plan.offsets().get(value);
        if (offset == null) {
            throw KilnException.of(ErrorCode.INVALID_GRAPH, "No device buffer planned for %s", value);
        }
        return arenaBase + 4L * offset;
    }

    private static Shape shape(Value value) {
        return value.type().shape();
    }

    private static void requireBatchFirst(Node node, Shape shape) {
        if (shape.symbolicAxis() > 0) {
            throw unsupported(node, "a tensor " + shape + " whose batch axis is not the first");
        }
    }

    /** The product of the sizes of axes {@code from..to} (1 when empty), which must be concrete. */
    private static long concrete(Node node, Shape shape, int from, int to) {
        long product = 1;
        for (int d = from; d <= to; d++) {
            if (shape.dim(d).isSymbolic()) {
                throw unsupported(node, "a batch axis inside the axes it works on (" + shape + ", axis " + d + ")");
            }
            product *= shape.dim(d).size();
        }
        return product;
    }

    private static long concrete(Node node, long size, String what) {
        if (size < 0) {
            throw unsupported(node, "a batch-sized " + what);
        }
        return size;
    }

    private static UnsupportedOperationException unsupported(Node node, String what) {
        return new UnsupportedOperationException("The cuda backend does not support " + what + " (node " + node.name() + ", op " + node.op()
                + "); it runs: " + SUPPORTED);
    }
}
