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
 * per row), null for a null argument, and fails naming the function and both lengths for a mis-sized array, or the
 * element and its value for a null, NaN or infinite element (or a double beyond float range), as {@link KilnModel}
 * does with {@code onError=fail}. The model travels in a broadcast when its file is at most
 * {@code spark.kiln.broadcastThreshold} bytes (session conf, default 64 MiB), as {@link KilnModel#setBroadcastThreshold}.
 */
public final class KilnUdf {
    private KilnUdf() {
    }

    /** The session conf key of the broadcast threshold, in bytes. */
    public static final String BROADCAST_THRESHOLD = "spark.kiln.broadcastThreshold";

    /** Registers the function; returns the handle it scores with (broadcast, or read from storage by executors). */
    public static ModelHandle register(SparkSession spark, String name, String modelUri) {
        String threshold = spark.conf().get(BROADCAST_THRESHOLD, String.valueOf(ModelHandle.DEFAULT_BROADCAST_THRESHOLD));
        long bytes;
        try {
            bytes = Long.parseLong(threshold.trim());
        } catch (NumberFormatException e) {
            throw KilnException.of(ErrorCode.INVALID_ARGUMENT, "%s must be a number of bytes, got '%s'", BROADCAST_THRESHOLD, threshold);
        }
        return register(spark, name, modelUri, bytes);
    }

    /** As {@link #register(SparkSession, String, String)}, broadcasting the model when its file is at most {@code broadcastThreshold} bytes. */
    public static ModelHandle register(SparkSession spark, String name, String modelUri, long broadcastThreshold) {
        ModelHandle handle = ModelHandle.create(spark, modelUri, broadcastThreshold);
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
                if (!Float.isFinite(row[i])) {
                    throw KilnException.of(ErrorCode.BAD_INPUT, "SQL function '%s': element %d of the argument is %s%s", name, i, v,
                            Double.isFinite(((Number) v).doubleValue()) ? ", beyond float range" : "");
                }
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
        return handle;
    }
}
