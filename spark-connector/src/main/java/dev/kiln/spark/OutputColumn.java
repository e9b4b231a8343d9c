package dev.kiln.spark;

import org.apache.spark.sql.types.ArrayType;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;

import java.io.Serializable;
import java.nio.FloatBuffer;

/**
 * One prediction column: a graph output's values per row, as {@code array<float>}, as a {@code float} when the output
 * has one value per row, or post-processed: {@code argmax} (an {@code int} column) or {@code softmax} (an array).
 */
public final class OutputColumn implements Serializable {
    private static final long serialVersionUID = 1L;

    /** Post-processing applied to the output values of a row. */
    public enum Transform { NONE, ARGMAX, SOFTMAX }

    private final String name;
    private final int graphOutput;
    private final int width;
    private final Transform transform;

    OutputColumn(String name, int graphOutput, int width, Transform transform) {
        this.name = name;
        this.graphOutput = graphOutput;
        this.width = width;
        this.transform = transform;
    }

    public String name() {
        return name;
    }

    int graphOutput() {
        return graphOutput;
    }

    int width() {
        return width;
    }

    public DataType dataType() {
        if (transform == Transform.ARGMAX) {
            return DataTypes.IntegerType;
        }
        if (width == 1 && transform == Transform.NONE) {
            return DataTypes.FloatType;
        }
        return DataTypes.createArrayType(DataTypes.FloatType, false);
    }

    /** Values per row as an output row stores them: the array length, or 0 for a scalar column. */
    int storedWidth() {
        return dataType() instanceof ArrayType ? width : 0;
    }

    /**
     * Writes this column's value for row {@code index} of {@code rows} (prediction column {@code column}), from the
     * row's output values starting at {@code offset} of {@code values}.
     */
    void write(FloatBuffer values, int offset, float[] scratch, ScoredRows rows, int index, int column) {
        switch (transform) {
            case ARGMAX: {
                int best = 0;
                float max = values.get(offset);
                for (int i = 1; i < width; i++) {
                    float v = values.get(offset + i);
                    if (v > max || Float.isNaN(v) && !Float.isNaN(max)) {
                        max = v;
                        best = i;
                    }
                }
                rows.putInt(index, column, best);
                return;
            }
            case SOFTMAX: {
                float max = Float.NEGATIVE_INFINITY;
                for (int i = 0; i < width; i++) {
                    max = Math.max(max, values.get(offset + i));
                }
                double sum = 0;
                for (int i = 0; i < width; i++) {
                    scratch[i] = (float) Math.exp(values.get(offset + i) - max);
                    sum += scratch[i];
                }
                for (int i = 0; i < width; i++) {
                    scratch[i] = (float) (scratch[i] / sum);
                }
                rows.putFloats(index, column, scratch);
                return;
            }
            default:
                if (width == 1) {
                    rows.putFloat(index, column, values.get(offset));
                    return;
                }
                values.get(offset, scratch, 0, width);
                rows.putFloats(index, column, scratch);
        }
    }
}
