package dev.kiln.engine.pass;

import dev.kiln.engine.ir.Graph;
import dev.kiln.engine.ir.GraphBuilder;
import dev.kiln.engine.ir.Node;
import dev.kiln.engine.ir.Value;
import dev.kiln.engine.ops.Activation;
import dev.kiln.engine.ops.OpRegistry;
import dev.kiln.engine.tensor.DType;
import dev.kiln.engine.tensor.TensorData;

import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Folds inference-mode batch normalization (and any other per-channel affine map with constant operands) into the
 * convolution or dense layer before it. After constant folding, a {@code BatchNorm2d} is {@code (y - mean) / s * g + b}
 * with constant {@code [C, 1, 1]} operands, and ONNX's BatchNormalization imports as {@code y * a + c}: any chain of
 * {@code add}, {@code sub}, {@code mul}, {@code div} whose other operand is a constant that varies only along the
 * channel axis (axis 1 of a conv2d's NCHW output, the last axis of a dense output), or is a scalar, is an affine map
 * {@code y -> y * scale + shift} per channel. With {@code y = W x + bias}, that is a conv2d/dense with weights
 * {@code W * scale} (per output channel) and bias {@code bias * scale + shift}: the normalization costs nothing at run
 * time. The layer must have no fused activation (it would sit between). Every intermediate must have a single
 * reader and not be a graph output. Arithmetic is done in double and rounded once.
 */
public final class BatchNormFolding implements Pass {
    @Override
    public String name() {
        return "batchnorm-folding";
    }

    private record Chain(Node layer, List<Node> affine, double[] scale, double[] shift) {
        Node last() {
            return affine.get(affine.size() - 1);
        }
    }

    @Override
    public Graph apply(Graph graph) {
        Map<Node, Chain> byLast = new IdentityHashMap<>();
        Set<Node> absorbed = Collections.newSetFromMap(new IdentityHashMap<>());
        for (Node node : graph.nodes()) {
            Chain chain = match(graph, node);
            if (chain != null) {
                absorbed.add(node);
                absorbed.addAll(chain.affine());
                byLast.put(chain.last(), chain);
            }
        }
        if (byLast.isEmpty()) {
            return graph;
        }
        GraphBuilder b = GraphBuilder.rewriting(graph);
        for (Node node : graph.nodes()) {
            Chain chain = byLast.get(node);
            if (chain != null) {
                Node layer = chain.layer();
                TensorData[] folded = fold(graph, layer, chain.scale(), chain.shift());
                List<Value> inputs = List.of(b.map(layer.input(0)), b.constant(folded[0]), b.constant(folded[1]));
                Value out = b.add(layer.op(), layer.attributes(), inputs, layer.name()).get(0);
                b.replace(node.output(), out);
            } else if (!absorbed.contains(node)) {
                b.keep(node);
            }
        }
        return b.outputsOf(graph).build();
    }

    private static boolean singleInternalUse(Graph graph, Value v) {
        return graph.users(v).size() == 1 && !graph.isOutput(v);
    }

    private static Chain match(Graph graph, Node layer) {
        int channelAxis;
        if (layer.op().equals(OpRegistry.CONV2D)
                && Activation.fromName(layer.attributes().getString("activation", "none")) == Activation.NONE) {
            channelAxis = 1;
        } else if (layer.op().equals(OpRegistry.DENSE)
                && Activation.fromName(layer.attributes().getString("activation", "none")) == Activation.NONE) {
            channelAxis = layer.output().type().rank() - 1;
        } else {
            return null;
        }
        if (graph.constantData(layer.input(1)) == null || layer.inputs().size() > 2 && graph.constantData(layer.input(2)) == null) {
            return null;
        }
        int channels = (int) graph.constantData(layer.input(1)).shape()[0];
        double[] scale = new double[channels];
        double[] shift = new double[channels];
        java.util.Arrays.fill(scale, 1);
        List<Node> affine = new ArrayList<>();
        Value y = layer.output();
        while (singleInternalUse(graph, y)) {
            Node next = graph.users(y).get(0);
            if (next.inputs().size() != 2 || next.input(0) == next.input(1) || !next.output().type().equals(y.type())) {
                break;
            }
            boolean first = next.input(0) == y;
            Value other = first ? next.input(1) : next.input(0);
            double[] c = perChannel(graph.constantData(other), y.type().rank(), channelAxis, channels);
            if (c == null) {
                break;
            }
            switch (next.op()) {
                case OpRegistry.ADD -> {
                    for (int i = 0; i < channels; i++) {
                        shift[i] += c[i];
                    }
                }
                case OpRegistry.SUB -> {
                    for (int i = 0; i < channels; i++) {
                        // y - c, or c - y = y * -1 + c
                        if (first) {
                            shift[i] -= c[i];
                        } else {
                            scale[i] = -scale[i];
                            shift[i] = c[i] - shift[i];
                        }
                    }
                }
                case OpRegistry.MUL -> {
                    for (int i = 0; i < channels; i++) {
                        scale[i] *= c[i];
                        shift[i] *= c[i];
                    }
                }
                case OpRegistry.DIV -> {
                    if (!first) {
                        return affine.isEmpty() ? null : new Chain(layer, affine, scale, shift);
                    }
                    for (int i = 0; i < channels; i++) {
                        scale[i] /= c[i];
                        shift[i] /= c[i];
                    }
                }
                default -> {
                    return affine.isEmpty() ? null : new Chain(layer, affine, scale, shift);
                }
            }
            affine.add(next);
            y = next.output();
        }
        return affine.isEmpty() ? null : new Chain(layer, affine, scale, shift);
    }

    /**
     * The constant's value per channel when it is a float32 scalar or varies only along {@code channelAxis} of a
     * rank-{@code rank} value (right-aligned broadcasting, as the ops use), else null.
     */
    private static double[] perChannel(TensorData data, int rank, int channelAxis, int channels) {
        if (data == null || data.dtype() != DType.FLOAT32) {
            return null;
        }
        long[] shape = data.shape();
        if (shape.length > rank) {
            return null;
        }
        float[] values = data.toFloatArray();
        double[] out = new double[channels];
        if (values.length == 1) {
            java.util.Arrays.fill(out, values[0]);
            return out;
        }
        int axis = channelAxis - (rank - shape.length);
        if (axis < 0 || shape[axis] != channels || values.length != channels) {
            return null;
        }
        for (int i = 0; i < channels; i++) {
            out[i] = values[i];
        }
        return out;
    }

    /** The layer's weights scaled per output channel and its bias mapped through the affine map. */
    private static TensorData[] fold(Graph graph, Node layer, double[] scale, double[] shift) {
        TensorData weight = graph.constantData(layer.input(1));
        float[] w = weight.toFloatArray();
        int channels = scale.length;
        int per = w.length / channels;
        float[] scaled = new float[w.length];
        for (int c = 0; c < channels; c++) {
            for (int j = 0; j < per; j++) {
                scaled[c * per + j] = (float) (w[c * per + j] * scale[c]);
            }
        }
        float[] bias = layer.inputs().size() > 2 ? graph.constantData(layer.input(2)).toFloatArray() : new float[channels];
        float[] shifted = new float[channels];
        for (int c = 0; c < channels; c++) {
            shifted[c] = (float) (bias[c] * scale[c] + shift[c]);
        }
        return new TensorData[] {TensorData.ofFloats(weight.shape(), scaled), TensorData.ofFloats(new long[] {channels}, shifted)};
    }
}
