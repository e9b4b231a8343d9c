package dev.kiln.engine.pass;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;
import dev.kiln.engine.ir.Attributes;
import dev.kiln.engine.ir.Graph;
import dev.kiln.engine.ir.GraphBuilder;
import dev.kiln.engine.ir.GraphPrinter;
import dev.kiln.engine.ir.Node;
import dev.kiln.engine.ir.TensorType;
import dev.kiln.engine.ir.Value;
import dev.kiln.engine.ops.OpRegistry;
import dev.kiln.engine.tensor.Shape;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class ShapeInferenceTest {
    /** A graph as an importer might build it: output types unknown (written as a placeholder). */
    private static Graph withPlaceholderTypes() {
        Value x = new Value(TensorType.float32(Shape.batched(16, 32)), "x");
        Value placeholder = new Value(TensorType.float32(Shape.scalar()), null);
        Value reshaped = new Value(TensorType.float32(Shape.scalar()), null);
        Node reshape = new Node(OpRegistry.RESHAPE, Attributes.of("shape", new long[] {0, 16, 4, 8}), List.of(x), List.of(reshaped), "r");
        Node perm = new Node(OpRegistry.TRANSPOSE, Attributes.of("perm", new long[] {0, 2, 1, 3}), List.of(reshaped), List.of(placeholder), "t");
        return GraphBuilder.of(List.of(x), List.of(reshape, perm), List.of(placeholder), List.of("y"), Map.of());
    }

    @Test
    void infersSymbolicShapesThroughReshapeAndTranspose() {
        Graph after = Passes.SHAPE_INFERENCE.apply(withPlaceholderTypes());

        assertThat(GraphPrinter.print(after)).isEqualTo("""
                graph(%x: float32[batch, 16, 32]) {
                  %0: float32[batch, 16, 4, 8] = reshape(%x) {shape=[0, 16, 4, 8]}
                  %1: float32[batch, 4, 16, 8] = transpose(%0) {perm=[0, 2, 1, 3]}
                  return y=%1
                }
                """);
    }

    @Test
    void reshapeToMinusOneKeepsTheBatchFactor() {
        GraphBuilder b = new GraphBuilder();
        Value x = b.input("x", TensorType.float32(Shape.batched(16, 32)));
        Value flat = b.add1(OpRegistry.RESHAPE, Attributes.of("shape", new long[] {-1, 32}), null, x);
        assertThat(flat.type().shape().toString()).isEqualTo("[batch*16, 32]");
    }

    @Test
    void isUnchangedOnConsistentGraphs() {
        Graph once = Passes.SHAPE_INFERENCE.apply(withPlaceholderTypes());
        assertThat(Passes.SHAPE_INFERENCE.apply(once)).isSameAs(once);
    }

    @Test
    void reportsTheNodeAndBothShapesOnAMismatch() {
        GraphBuilder b = new GraphBuilder();
        Value x = b.input("x", TensorType.float32(Shape.batched(3)));
        Value y = b.input("y", TensorType.float32(Shape.batched(4)));
        assertThatThrownBy(() -> b.add(OpRegistry.ADD, Attributes.EMPTY, List.of(x, y), "block.add"))
                .isInstanceOf(KilnException.class)
                .hasMessageContaining("add 'block.add'")
                .hasMessageContaining("[batch, 3]").hasMessageContaining("[batch, 4]")
                .extracting(e -> ((KilnException) e).code()).isEqualTo(ErrorCode.SHAPE_MISMATCH);
    }
}
