package dev.kiln.spark;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;
import dev.kiln.engine.exec.Executor;
import dev.kiln.engine.ir.Signature;
import org.apache.spark.TaskContext;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.api.java.UDF1;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;

/**
 * A Kiln model as a SQL function: {@code KilnUdf.register(spark, "score", uri)} then {@code SELECT score(features)
 * FROM t}. Row at a time, on the same per-executor model cache and executors as {@link KilnModel}; takes one
 * {@code array<float>} or {@code array<double>} argument, returns {@code array<float>} (or {@code float} for one value
 * per row), null for a null argument, and fails naming the function and both lengths for a mis-sized array.
 */
public final class KilnUdf {
    private KilnUdf() {
    }

    public static void register(SparkSession spark, String name, String modelUri) {
        ModelHandle handle = ModelHandle.create(spark, modelUri, 64L << 20);
        Signature signature = handle.driverFile().signature();
        if (signature.inputs().size() != 1) {
            throw KilnException.of(ErrorCode.SHAPE_MISMATCH, "SQL function '%s': model %s has %d inputs; a UDF takes one array argument",
                    name, modelUri, signature.inputs().size());
        }
        int inWidth = KilnModel.rowWidth(signature.inputs().get(0), "input");
        int outWidth = KilnModel.rowWidth(signature.outputs().get(0), "output");
        DataType returnType = outWidth == 1 ? DataTypes.FloatType : DataTypes.createArrayType(DataTypes.FloatType, false);
        UDF1<scala.collection.Seq<Object>, Object> function = values -> {
            if (values == null) {
                return null;
            }
            if (values.length() != inWidth) {
                throw KilnException.of(ErrorCode.BAD_INPUT, "SQL function '%s' expects an array of length %d, got length %d", name, inWidth, values.length());
            }
            float[] row = new float[inWidth];
            scala.collection.Iterator<Object> it = values.iterator();
            for (int i = 0; i < inWidth; i++) {
                Object v = it.next();
                if (v == null) {
                    throw KilnException.of(ErrorCode.BAD_INPUT, "SQL function '%s': element %d of the argument is null", name, i);
                }
                row[i] = ((Number) v).floatValue();
            }
            TaskContext task = TaskContext.get();
            try (ExecutorModels.Lease lease = ExecutorModels.acquire(handle, Device.select("auto", task == null ? null : task.resourcesJMap()), 1)) {
                Executor executor = lease.executor();
                executor.setInput(0, row, 0, 1);
                executor.run(1);
                float[] out = new float[outWidth];
                executor.getOutput(0, out, 0);
                return outWidth == 1 ? (Object) out[0] : out;
            }
        };
        spark.udf().register(name, function, returnType);
    }
}
