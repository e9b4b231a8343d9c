package dev.kiln.engine.ops;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;

import java.util.Collection;
import java.util.Collections;
import java.util.Map;
import java.util.TreeMap;

/** Every op Kiln knows, by name: the single source of truth for the eager path, tracer, passes and backends. */
public final class OpRegistry {
    public static final String ADD = "add";
    public static final String SUB = "sub";
    public static final String MUL = "mul";
    public static final String DIV = "div";
    public static final String POW = "pow";
    public static final String EXP = "exp";
    public static final String LOG = "log";
    public static final String SQRT = "sqrt";
    public static final String ERF = "erf";
    public static final String NEG = "neg";
    public static final String IDENTITY = "identity";
    public static final String SOFTMAX = "softmax";
    public static final String MATMUL = "matmul";
    public static final String DENSE = "dense";
    public static final String RESHAPE = "reshape";
    public static final String TRANSPOSE = "transpose";
    public static final String CONCAT = "concat";
    public static final String SPLIT = "split";
    public static final String REDUCE_MEAN = "reduce_mean";
    public static final String REDUCE_SUM = "reduce_sum";
    public static final String EXPAND_LIKE = "expand_like";
    public static final String CONV2D = "conv2d";
    public static final String MAX_POOL2D = "max_pool2d";
    public static final String AVG_POOL2D = "avg_pool2d";
    public static final String PAD = "pad";
    public static final String GATHER = "gather";
    public static final String LAYER_NORM = "layer_norm";
    public static final String CONSTANT = "constant";
    public static final String PARAMETER = "parameter";

    private static final Map<String, OpDef> OPS = build();

    private OpRegistry() {
    }

    private static Map<String, OpDef> build() {
        Map<String, OpDef> ops = new TreeMap<>();
        register(ops, new BinaryOp(ADD, "a + b, elementwise with broadcasting", (a, b) -> a + b));
        register(ops, new BinaryOp(SUB, "a - b, elementwise with broadcasting", (a, b) -> a - b));
        register(ops, new BinaryOp(MUL, "a * b, elementwise with broadcasting", (a, b) -> a * b));
        register(ops, new BinaryOp(DIV, "a / b, elementwise with broadcasting", (a, b) -> a / b));
        register(ops, new BinaryOp(POW, "a ^ b, elementwise with broadcasting", (a, b) -> (float) Math.pow(a, b)));
        register(ops, new UnaryOp(EXP, "e^x, elementwise", x -> (float) Math.exp(x)));
        register(ops, new UnaryOp(LOG, "natural logarithm, elementwise", x -> (float) Math.log(x)));
        register(ops, new UnaryOp(SQRT, "square root, elementwise", x -> (float) Math.sqrt(x)));
        register(ops, new UnaryOp(ERF, "the error function, elementwise", x -> (float) MathFunctions.erf(x)));
        register(ops, new UnaryOp(NEG, "-x, elementwise", x -> -x));
        register(ops, new IdentityOp());
        for (Activation activation : Activation.values()) {
            if (activation != Activation.NONE) {
                register(ops, UnaryOp.of(activation));
            }
        }
        register(ops, new SoftmaxOp());
        register(ops, new MatMulOp());
        register(ops, new DenseOp());
        register(ops, new ReshapeOp());
        register(ops, new TransposeOp());
        register(ops, new ConcatOp());
        register(ops, new SplitOp());
        register(ops, new ReduceOp(REDUCE_MEAN, true));
        register(ops, new ReduceOp(REDUCE_SUM, false));
        register(ops, new ExpandOp());
        register(ops, new Conv2dOp());
        register(ops, new MaxPool2dOp());
        register(ops, new AvgPool2dOp());
        register(ops, new PadOp());
        register(ops, new GatherOp());
        register(ops, new LayerNormOp());
        register(ops, SourceOp.constant());
        register(ops, SourceOp.parameter());
        return Collections.unmodifiableMap(ops);
    }

    private static void register(Map<String, OpDef> ops, OpDef op) {
        if (ops.put(op.name(), op) != null) {
            throw new IllegalStateException("Op registered twice: " + op.name());
        }
    }

    /** The op named {@code name}; fails naming the op and listing what is supported. */
    public static OpDef get(String name) {
        OpDef op = OPS.get(name);
        if (op == null) {
            throw KilnException.of(ErrorCode.UNSUPPORTED_OP, "Unknown op '%s'; supported: %s", name, String.join(", ", OPS.keySet()));
        }
        return op;
    }

    public static boolean contains(String name) {
        return OPS.containsKey(name);
    }

    /** All ops, sorted by name. */
    public static Collection<OpDef> all() {
        return OPS.values();
    }
}
