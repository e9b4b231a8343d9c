package dev.kiln.engine.pass;

import java.util.List;

/** The catalogue of passes, and the standard order in which compilation runs them. */
public final class Passes {
    /** Recomputes value types from the op registry. */
    public static final Pass SHAPE_INFERENCE = new ShapeInference();
    /** x*1, x+0, double transposes, identity reshapes. */
    public static final Pass ALGEBRAIC_SIMPLIFICATION = new AlgebraicSimplification();
    /** Layer normalization written out elementwise (LayerNorm blocks, ONNX LayerNormalization) into one layer_norm. */
    public static final Pass LAYER_NORM_FUSION = new LayerNormFusion();
    /** x/2 (1 + erf(x / sqrt 2)) written out (PyTorch's ONNX export of GELU) into one gelu node. */
    public static final Pass GELU_FUSION = new GeluFusion();
    /** matmul(x, W^T) + b, then an activation, into one dense node. */
    public static final Pass DENSE_ACTIVATION_FUSION = new DenseActivationFusion();
    /** Per-channel affine maps (inference batch-norm) after conv2d/dense, into the layer's weights and bias. */
    public static final Pass BATCH_NORM_FOLDING = new BatchNormFolding();
    /** Evaluates nodes whose inputs are all known at compile time. */
    public static final Pass CONSTANT_FOLDING = new ConstantFolding();
    /** Merges nodes that compute the same value. */
    public static final Pass COMMON_SUBEXPRESSION_ELIMINATION = new CommonSubexpressionElimination();
    /** Drops nodes whose results nobody reads. */
    public static final Pass DEAD_CODE_ELIMINATION = new DeadCodeElimination();

    private Passes() {
    }

    /**
     * The default pipeline. Simplification runs first so fusion sees clean patterns; GELU written out elementwise
     * becomes one node before dense fusion, so a dense layer can take it as its activation; fusion runs before folding so
     * that {@code transpose(W)} is absorbed into {@code dense} rather than materialised; batch-norm folding needs the
     * constants that folding produced (and layer-norm fusion a folded epsilon), and a dense layer it changed may then absorb the activation after it; CSE and
     * DCE clean up.
     */
    public static List<Pass> standard() {
        return List.of(SHAPE_INFERENCE, ALGEBRAIC_SIMPLIFICATION, COMMON_SUBEXPRESSION_ELIMINATION, GELU_FUSION, DENSE_ACTIVATION_FUSION,
                CONSTANT_FOLDING, BATCH_NORM_FOLDING, LAYER_NORM_FUSION, DENSE_ACTIVATION_FUSION, ALGEBRAIC_SIMPLIFICATION,
                COMMON_SUBEXPRESSION_ELIMINATION, DEAD_CODE_ELIMINATION);
    }

    /** Every distinct pass, for docs and tests. */
    public static List<Pass> all() {
        return List.of(SHAPE_INFERENCE, ALGEBRAIC_SIMPLIFICATION, GELU_FUSION, LAYER_NORM_FUSION, DENSE_ACTIVATION_FUSION, CONSTANT_FOLDING,
                BATCH_NORM_FOLDING, COMMON_SUBEXPRESSION_ELIMINATION, DEAD_CODE_ELIMINATION);
    }
}
