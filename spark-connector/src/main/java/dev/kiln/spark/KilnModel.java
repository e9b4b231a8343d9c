package dev.kiln.spark;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;
import dev.kiln.engine.ir.Signature;
import dev.kiln.engine.tensor.Dim;
import dev.kiln.engine.tensor.Shape;
import dev.kiln.format.kiln.KilnFormat;
import org.apache.spark.TaskContext;
import org.apache.spark.api.java.function.FlatMapFunction;
import org.apache.spark.ml.Transformer;
import org.apache.spark.ml.linalg.VectorUDT;
import org.apache.spark.ml.param.IntParam;
import org.apache.spark.ml.param.LongParam;
import org.apache.spark.ml.param.Param;
import org.apache.spark.ml.param.ParamMap;
import org.apache.spark.ml.param.StringArrayParam;
import org.apache.spark.ml.util.Identifiable$;
import org.apache.spark.rdd.RDD;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.types.ArrayType;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.NumericType;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * Scores a DataFrame with a Kiln model: a Spark ML {@link Transformer}, usable in a {@code Pipeline}.
 * <pre>{@code
 * Dataset<Row> scored = new KilnModel()
 *     .setModelUri("hdfs://nn/models/mlp.kiln")
 *     .setInputCols("features")          // array<float>, array<double>, ML Vector, or numeric columns
 *     .setOutputCols("scores")           // array<float>, or float when the output has one value per row
 *     .setBatchSize(512)                 // optional: by default, as many rows as fit 1 MiB of input
 *     .transform(df);
 * }</pre>
 * Input columns map to the model's inputs in order, or by name with {@code input=column} entries
 * ({@code setInputCols("ids=token_ids", "mask=attention_mask")}); a one-input model may instead take several numeric
 * columns, assembled into its input (by name: several entries for one input). Output columns take the model's first
 * outputs in order, or pick outputs by name ({@code setOutputCols("logits=scores")}). {@code transformSchema} checks
 * names, types and (where the schema says) sizes before any job runs. Every input row yields exactly one output row,
 * in order; rows with null, mis-sized or non-finite input fail the job ({@code onError=fail}, naming column and row)
 * or get null predictions and a message in {@code errorCol} ({@code onError=null}).
 */
public class KilnModel extends Transformer {
    private static final long serialVersionUID = 1L;

    private final String uid;
    private final Param<String> modelUri;
    private final StringArrayParam inputCols;
    private final StringArrayParam outputCols;
    private final Param<String> outputTransform;
    private final IntParam batchSize;
    private final Param<String> device;
    private final Param<String> onError;
    private final Param<String> errorCol;
    private final Param<String> keyCol;
    private final LongParam broadcastThreshold;

    private transient ModelHandle handle;
    private transient KilnMetrics lastMetrics;

    public KilnModel() {
        this(Identifiable$.MODULE$.randomUID("kiln"));
    }

    public KilnModel(String uid) {
        // Params name their parent by uid, so they are created after it.
        this.uid = uid;
        this.modelUri = new Param<>(this, "modelUri", "URI of the .kiln model (path, file://, hdfs://, s3a://)");
        this.inputCols = new StringArrayParam(this, "inputCols", "columns feeding the model's inputs, in order, or input=column entries naming them");
        this.outputCols = new StringArrayParam(this, "outputCols", "prediction columns for the model's first outputs, in order, or output=column entries naming them");
        this.outputTransform = new Param<>(this, "outputTransform", "none, argmax (int column) or softmax");
        this.batchSize = new IntParam(this, "batchSize", "rows per batch (unset: as many as fit " + (AUTO_BATCH_BYTES >> 20)
                + " MiB of input, " + AUTO_BATCH_MIN + " to " + AUTO_BATCH_MAX + ")");
        this.device = new Param<>(this, "device", "auto (the task's GPU if Spark assigned one, else CPU), cpu, or cuda:N");
        this.onError = new Param<>(this, "onError", "fail: a bad input row fails the job; null: it gets null predictions and an error message");
        this.errorCol = new Param<>(this, "errorCol", "column for the error message of rows that could not be scored (onError=null)");
        this.keyCol = new Param<>(this, "keyCol", "optional column whose value names a bad row in error messages");
        this.broadcastThreshold = new LongParam(this, "broadcastThreshold", "model files up to this many bytes travel in a broadcast");
        setDefault(outputCols, new String[] {"prediction"});
        setDefault(outputTransform, "none");
        setDefault(device, "auto");
        setDefault(onError, "fail");
        setDefault(errorCol, "kiln_error");
        setDefault(keyCol, "");
        setDefault(broadcastThreshold, ModelHandle.DEFAULT_BROADCAST_THRESHOLD);
    }

    @Override
    public String uid() {
        return uid;
    }

    // ---- params --------------------------------------------------------------------------------------------------

    public Param<String> modelUri() {
        return modelUri;
    }

    public StringArrayParam inputCols() {
        return inputCols;
    }

    public StringArrayParam outputCols() {
        return outputCols;
    }

    public Param<String> outputTransform() {
        return outputTransform;
    }

    public IntParam batchSize() {
        return batchSize;
    }

    public Param<String> device() {
        return device;
    }

    public Param<String> onError() {
        return onError;
    }

    public Param<String> errorCol() {
        return errorCol;
    }

    public Param<String> keyCol() {
        return keyCol;
    }

    public LongParam broadcastThreshold() {
        return broadcastThreshold;
    }

    public KilnModel setModelUri(String value) {
        set(modelUri, value);
        handle = null;
        return this;
    }

    public KilnModel setInputCols(String... value) {
        set(inputCols, value);
        return this;
    }

    public KilnModel setOutputCols(String... value) {
        set(outputCols, value);
        return this;
    }

    /** {@code none}, {@code argmax} or {@code softmax}, applied to every prediction column. */
    public KilnModel setOutputTransform(String value) {
        transformOf(value);
        set(outputTransform, value);
        return this;
    }

    /**
     * Input bytes per batch when {@code batchSize} is not set. A batch's input, written by the task, read by the
     * engine and read again for the output rows, then stays in the core's 1 MiB L2 cache: the seed MLP (2 KB rows)
     * scored 1-12% faster through Spark at 512 rows than at 1,024 in four comparisons (BENCHMARKS.md, Spark, eighth
     * session).
     */
    static final int AUTO_BATCH_BYTES = 1 << 20;
    static final int AUTO_BATCH_MIN = 64;
    static final int AUTO_BATCH_MAX = 4096;

    /**
     * The batch size a transform of a frame with {@code schema} uses: {@code batchSize} when set, otherwise as many
     * rows as fit {@value #AUTO_BATCH_BYTES} bytes of model input (a multiple of 64, from {@value #AUTO_BATCH_MIN} to
     * {@value #AUTO_BATCH_MAX}; 512 for 512 floats per row).
     */
    public int batchSizeFor(StructType schema) {
        return batchSizeFor(plan(schema, signature()).inputs());
    }

    private int batchSizeFor(List<InputAdapter> inputs) {
        return isDefined(batchSize) ? (Integer) $(batchSize) : autoBatchSize(inputs.stream().mapToLong(a -> 4L * a.width()).sum());
    }

    /** Rows of {@code rowBytes} input bytes each that fit {@link #AUTO_BATCH_BYTES}, a multiple of 64, clamped. */
    static int autoBatchSize(long rowBytes) {
        long rows = AUTO_BATCH_BYTES / Math.max(1, rowBytes) / 64 * 64;
        return (int) Math.max(AUTO_BATCH_MIN, Math.min(AUTO_BATCH_MAX, rows));
    }

    public KilnModel setBatchSize(int value) {
        if (value <= 0) {
            throw KilnException.of(ErrorCode.INVALID_ARGUMENT, "batchSize must be positive, got %d", value);
        }
        set(batchSize, value);
        return this;
    }

    public KilnModel setDevice(String value) {
        set(device, Device.validateSetting(value));
        return this;
    }

    public KilnModel setOnError(String value) {
        if (!value.equals("fail") && !value.equals("null")) {
            throw KilnException.of(ErrorCode.INVALID_ARGUMENT, "onError must be 'fail' or 'null', got '%s'", value);
        }
        set(onError, value);
        return this;
    }

    public KilnModel setErrorCol(String value) {
        set(errorCol, value);
        return this;
    }

    public KilnModel setKeyCol(String value) {
        set(keyCol, value);
        return this;
    }

    public KilnModel setBroadcastThreshold(long value) {
        set(broadcastThreshold, value);
        handle = null;
        return this;
    }

    /** The metrics of the last {@link #transform}; their values are final once its job has run. */
    public KilnMetrics lastMetrics() {
        return lastMetrics;
    }

    private static OutputColumn.Transform transformOf(String value) {
        try {
            return OutputColumn.Transform.valueOf(value.toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException e) {
            throw KilnException.of(ErrorCode.INVALID_ARGUMENT, "outputTransform must be none, argmax or softmax, got '%s'", value);
        }
    }

    // ---- schema --------------------------------------------------------------------------------------------------

    private ModelHandle handle(SparkSession spark) {
        if (!isDefined(modelUri)) {
            throw KilnException.of(ErrorCode.INVALID_ARGUMENT, "KilnModel needs setModelUri");
        }
        if (handle == null) {
            handle = ModelHandle.create(spark, $(modelUri), (Long) $(broadcastThreshold));
        }
        return handle;
    }

    private Signature signature() {
        return handle(SparkSession.active()).driverFile().signature();
    }

    @Override
    public StructType transformSchema(StructType schema) {
        return plan(schema, signature()).outputSchema;
    }

    /** The validated mapping of columns to model inputs and outputs to columns. */
    private record Mapping(List<InputAdapter> inputs, List<OutputColumn> outputs, StructType outputSchema) { }

    private Mapping plan(StructType schema, Signature signature) {
        String[] cols = isDefined(inputCols) ? $(inputCols) : new String[0];
        List<Signature.Spec> modelInputs = signature.inputs();
        if (cols.length == 0) {
            throw KilnException.of(ErrorCode.INVALID_ARGUMENT, "KilnModel needs setInputCols: the model's inputs are %s", modelInputs);
        }
        List<InputAdapter> adapters = new ArrayList<>();
        List<String[]> named = named(cols, modelInputs, schema, "input");
        if (named != null) {
            // input=column entries: each model input by name; several numeric columns for one input are assembled.
            for (Signature.Spec spec : modelInputs) {
                List<String> mine = new ArrayList<>();
                for (String[] entry : named) {
                    if (entry[0].equals(spec.name())) {
                        mine.add(entry[1]);
                    }
                }
                if (mine.isEmpty()) {
                    throw KilnException.of(ErrorCode.INVALID_ARGUMENT, "Model input '%s' %s has no column: inputCols %s name model inputs, so every one needs "
                            + "an entry '%s=COLUMN'", spec.name(), spec.shape(), Arrays.toString(cols), spec.name());
                }
                adapters.add(mine.size() == 1 ? adapter(schema, mine.get(0), spec) : numericColumns(schema, mine.toArray(new String[0]), spec));
            }
        } else if (cols.length == modelInputs.size()) {
            for (int i = 0; i < cols.length; i++) {
                adapters.add(adapter(schema, cols[i], modelInputs.get(i)));
            }
        } else if (modelInputs.size() == 1 && cols.length > 1) {
            adapters.add(numericColumns(schema, cols, modelInputs.get(0)));
        } else {
            throw KilnException.of(ErrorCode.SHAPE_MISMATCH, "The model has %d inputs %s but %d input columns were given %s",
                    modelInputs.size(), modelInputs, cols.length, Arrays.toString(cols));
        }
        String[] outs = $(outputCols).clone();
        List<Signature.Spec> modelOutputs = signature.outputs();
        // output=column entries pick model outputs by name; plain names take the first outputs in order.
        int[] graphOutput = java.util.stream.IntStream.range(0, outs.length).toArray();
        List<String[]> namedOutputs = named(outs, modelOutputs, null, "output");
        if (namedOutputs != null) {
            java.util.Set<String> picked = new java.util.HashSet<>();
            for (int o = 0; o < outs.length; o++) {
                String output = namedOutputs.get(o)[0];
                if (!picked.add(output)) {
                    throw KilnException.of(ErrorCode.INVALID_ARGUMENT, "Model output '%s' is mapped twice in outputCols %s", output, Arrays.toString($(outputCols)));
                }
                graphOutput[o] = indexOf(modelOutputs, output, "output");
                outs[o] = namedOutputs.get(o)[1];
            }
        } else if (outs.length == 0 || outs.length > modelOutputs.size()) {
            throw KilnException.of(ErrorCode.SHAPE_MISMATCH, "%d output columns %s for a model with %d outputs %s",
                    outs.length, Arrays.toString(outs), modelOutputs.size(), modelOutputs);
        }
        OutputColumn.Transform transform = transformOf($(outputTransform));
        List<OutputColumn> outputs = new ArrayList<>();
        List<StructField> fields = new ArrayList<>(Arrays.asList(schema.fields()));
        java.util.Set<String> names = new java.util.HashSet<>();
        for (String name : outs) {
            if (!names.add(name.toLowerCase(Locale.ROOT)) || ($(onError).equals("null") && name.equalsIgnoreCase($(errorCol)))) {
                throw KilnException.of(ErrorCode.INVALID_ARGUMENT, "Output column '%s' is named twice (output columns %s, error column '%s')",
                        name, Arrays.toString(outs), $(errorCol));
            }
        }
        for (int o = 0; o < outs.length; o++) {
            requireAbsent(schema, outs[o]);
            OutputColumn column = new OutputColumn(outs[o], graphOutput[o], rowWidth(modelOutputs.get(graphOutput[o]), "output"), transform);
            outputs.add(column);
            fields.add(DataTypes.createStructField(outs[o], column.dataType(), true));
        }
        if ($(onError).equals("null")) {
            requireAbsent(schema, $(errorCol));
            fields.add(DataTypes.createStructField($(errorCol), DataTypes.StringType, true));
        }
        String key = $(keyCol);
        if (!key.isEmpty()) {
            field(schema, key);
        }
        return new Mapping(adapters, outputs, DataTypes.createStructType(fields));
    }

    /**
     * Entries of the form {@code name=column} whose {@code name} is one of the model's inputs or outputs, split in two;
     * null when no entry is (plain column names, positional). An entry that is itself a column of {@code schema} stays
     * a column name, and so does one whose part before '=' names nothing in the model: a column may be called
     * {@code "a=b"}. Mixing the two forms is an error naming the entries that are not mappings.
     */
    private static List<String[]> named(String[] entries, List<Signature.Spec> specs, StructType schema, String what) {
        java.util.Set<String> specNames = new java.util.HashSet<>();
        for (Signature.Spec spec : specs) {
            specNames.add(spec.name());
        }
        List<String[]> named = new ArrayList<>();
        List<String> plain = new ArrayList<>();
        for (String entry : entries) {
            int eq = entry.indexOf('=');
            boolean column = schema != null && Arrays.asList(schema.fieldNames()).contains(entry);
            String name = eq > 0 ? entry.substring(0, eq).trim() : "";
            if (!column && eq > 0 && eq < entry.length() - 1 && specNames.contains(name)) {
                named.add(new String[] {name, entry.substring(eq + 1).trim()});
            } else {
                plain.add(entry);
            }
        }
        if (named.isEmpty()) {
            return null;
        }
        if (!plain.isEmpty()) {
            throw KilnException.of(ErrorCode.INVALID_ARGUMENT, "%sCols %s mix '%s=column' entries with plain column names %s: use one form "
                    + "(the model's %ss are %s)", what, Arrays.toString(entries), what, plain, what, specNames.stream().sorted().toList());
        }
        return named;
    }

    private static int indexOf(List<Signature.Spec> specs, String name, String what) {
        for (int i = 0; i < specs.size(); i++) {
            if (specs.get(i).name().equals(name)) {
                return i;
            }
        }
        throw KilnException.of(ErrorCode.INVALID_ARGUMENT, "The model has no %s named '%s'; its %ss are %s", what, name, what,
                specs.stream().map(Signature.Spec::name).toList());
    }

    private static void requireAbsent(StructType schema, String name) {
        if (Arrays.stream(schema.fieldNames()).anyMatch(existing -> existing.equalsIgnoreCase(name))) {
            throw KilnException.of(ErrorCode.INVALID_ARGUMENT, "Output column '%s' already exists in the input; choose another name", name);
        }
    }

    private static StructField field(StructType schema, String name) {
        for (StructField f : schema.fields()) {
            if (f.name().equals(name)) {
                return f;
            }
        }
        throw KilnException.of(ErrorCode.INVALID_ARGUMENT, "Column '%s' does not exist; columns: %s", name, Arrays.toString(schema.fieldNames()));
    }

    /** Values per row of a signature entry: the product of its non-batch dimensions (the batch must be first). */
    static int rowWidth(Signature.Spec spec, String what) {
        Shape shape = spec.shape();
        if (shape.rank() == 0 || !shape.dim(0).isSymbolic() || !shape.dim(0).equals(Dim.symbol(Shape.BATCH))) {
            throw KilnException.of(ErrorCode.SHAPE_MISMATCH, "Model %s '%s' %s has no leading batch dimension; Spark scoring needs one", what, spec.name(), shape);
        }
        long width = 1;
        for (int i = 1; i < shape.rank(); i++) {
            width *= shape.dim(i).size();
        }
        return Math.toIntExact(width);
    }

    private static InputAdapter adapter(StructType schema, String column, Signature.Spec input) {
        StructField field = field(schema, column);
        int ordinal = schema.fieldIndex(column);
        int width = rowWidth(input, "input");
        DataType type = field.dataType();
        if (type instanceof ArrayType array && array.elementType().equals(DataTypes.FloatType)) {
            return new InputAdapter.FloatArrayColumn(ordinal, column, width);
        }
        if (type instanceof ArrayType array && array.elementType().equals(DataTypes.DoubleType)) {
            return new InputAdapter.DoubleArrayColumn(ordinal, column, width);
        }
        if (type instanceof ArrayType array && (array.elementType().equals(DataTypes.IntegerType) || array.elementType().equals(DataTypes.LongType)
                || array.elementType().equals(DataTypes.ShortType) || array.elementType().equals(DataTypes.ByteType))) {
            return new InputAdapter.IntegerArrayColumn(ordinal, column, width, array.elementType());
        }
        if (type instanceof VectorUDT) {
            return new InputAdapter.VectorColumn(ordinal, column, width);
        }
        if (type instanceof NumericType && width == 1) {
            return numericColumns(schema, new String[] {column}, input);
        }
        throw KilnException.of(ErrorCode.SHAPE_MISMATCH,
                "Column '%s' is %s but model input '%s' %s expects array<float>, array<double> or an integer array of length %d, a vector of size %d%s",
                column, type.simpleString(), input.name(), input.shape(), width, width, width == 1 ? ", or a numeric column" : ", or that many numeric columns");
    }

    private static InputAdapter numericColumns(StructType schema, String[] columns, Signature.Spec input) {
        int width = rowWidth(input, "input");
        if (columns.length != width) {
            throw KilnException.of(ErrorCode.SHAPE_MISMATCH, "Model input '%s' %s takes %d values per row but %d numeric columns were given %s",
                    input.name(), input.shape(), width, columns.length, Arrays.toString(columns));
        }
        int[] ordinals = new int[columns.length];
        char[] kinds = new char[columns.length];
        for (int i = 0; i < columns.length; i++) {
            StructField f = field(schema, columns[i]);
            ordinals[i] = schema.fieldIndex(columns[i]);
            DataType t = f.dataType();
            if (t.equals(DataTypes.FloatType)) {
                kinds[i] = 'f';
            } else if (t.equals(DataTypes.DoubleType)) {
                kinds[i] = 'd';
            } else if (t.equals(DataTypes.IntegerType)) {
                kinds[i] = 'i';
            } else if (t.equals(DataTypes.LongType)) {
                kinds[i] = 'l';
            } else if (t.equals(DataTypes.ShortType)) {
                kinds[i] = 's';
            } else if (t.equals(DataTypes.ByteType)) {
                kinds[i] = 'b';
            } else {
                throw KilnException.of(ErrorCode.SHAPE_MISMATCH, "Column '%s' is %s; assembling columns into model input '%s' needs numeric columns",
                        columns[i], t.simpleString(), input.name());
            }
        }
        return new InputAdapter.NumericColumns(ordinals, columns, kinds);
    }

    // ---- transform -----------------------------------------------------------------------------------------------

    /**
     * Scores {@code rows} (Spark's internal rows of {@code schema}) in this JVM, outside any Spark job, through the code
     * a task runs for each partition: rows gathered into Arrow batches, the compiled model, output rows of
     * {@link #transformSchema} handed to {@code sink} in order (each valid only during the call: copy one to keep it).
     * The model comes from this JVM's executor cache, on the CPU (no task, so no GPU address). For benchmarks and
     * debugging the per-row path without a scheduler in the way; {@link #transform} is the way to score data.
     *
     * @return the number of rows handed to {@code sink}
     */
    public long scoreLocally(SparkSession spark, StructType schema, java.util.Iterator<InternalRow> rows, java.util.function.Consumer<InternalRow> sink) {
        long count = 0;
        try (PartitionScorer scorer = new PartitionScorer(scoringPlan(spark, schema), rows, null)) {
            while (scorer.hasNext()) {
                sink.accept(scorer.next());
                count++;
            }
        }
        return count;
    }

    /**
     * Everything a partition needs to score rows of {@code schema}, checked against the model; {@link #lastMetrics()}
     * becomes this plan's metrics.
     */
    ScoringPlan scoringPlan(SparkSession spark, StructType schema) {
        ModelHandle model = handle(spark);
        Mapping mapping = plan(schema, model.driverFile().signature());
        String key = $(keyCol);
        int keyOrdinal = key.isEmpty() ? -1 : schema.fieldIndex(key);
        KilnMetrics metrics = new KilnMetrics(spark.sparkContext(), uid);
        lastMetrics = metrics;
        hintColumnOrder(schema, mapping.inputs());
        return new ScoringPlan(model, mapping.inputs(), mapping.outputs(), batchSizeFor(mapping.inputs()), $(device),
                $(onError).equals("fail"), key, keyOrdinal, keyOrdinal < 0 ? null : schema.fields()[keyOrdinal].dataType(), metrics,
                schema, mapping.outputSchema());
    }

    /** Schemas already told about their column order (once each per JVM: a streaming query scores every micro-batch). */
    private static final java.util.Set<String> HINTED = java.util.concurrent.ConcurrentHashMap.newKeySet();

    /**
     * Says, once per schema, when the rows could be built in place (docs/SPARK.md) but for a variable-length column
     * before the features: selecting the features first saves a copy of each row's features.
     */
    private static void hintColumnOrder(StructType schema, List<InputAdapter> inputs) {
        if (inputs.isEmpty() || !inputs.stream().allMatch(InputAdapter::copiesVerbatim)) {
            return;
        }
        int[] arrays = inputs.stream().mapToInt(adapter -> adapter.ordinals()[0]).distinct().toArray();
        StructField obstacle = OutputRows.inPlaceObstacle(schema, arrays);
        if (obstacle != null && HINTED.size() < 1000 && HINTED.add(schema.catalogString())) {
            org.slf4j.LoggerFactory.getLogger(KilnModel.class).info(
                    "Column '{}' ({}) comes before the model's input columns {}: each row's features are copied twice. Select them before it "
                            + "(and before any other string, binary, array, map or struct column) to build the rows in place (docs/TUNING.md)",
                    obstacle.name(), obstacle.dataType().simpleString(), inputs.stream().map(InputAdapter::columns).distinct().toList());
        }
    }

    @Override
    public Dataset<Row> transform(Dataset<?> dataset) {
        SparkSession spark = dataset.sparkSession();
        Dataset<Row> frame = dataset.toDF();
        ScoringPlan plan = scoringPlan(spark, frame.schema());
        KilnJobListener.watch(spark.sparkContext(), plan.metrics());
        boolean internal = SparkInternals.available() && Boolean.parseBoolean(spark.conf().get("spark.kiln.useInternalRows", "true"));
        if (!internal) {
            return PublicRowPath.transform(spark, frame, plan, plan.outputSchema());
        }
        if (Boolean.parseBoolean(spark.conf().get("spark.kiln.planNode", "true"))) {
            StructField[] all = plan.outputSchema().fields();
            StructType predictions = DataTypes.createStructType(Arrays.copyOfRange(all, frame.schema().size(), all.length));
            return SparkInternals.scored(spark, frame, plan, predictions);
        }
        RDD<InternalRow> rows = SparkInternals.toInternalRdd(frame);
        FlatMapFunction<java.util.Iterator<InternalRow>, InternalRow> score = it -> new PartitionScorer(plan, it, TaskContext.get());
        RDD<InternalRow> scored = rows.toJavaRDD().mapPartitions(score).rdd();
        return SparkInternals.fromInternalRdd(spark, scored, plan.outputSchema());
    }

    @Override
    public KilnModel copy(ParamMap extra) {
        return (KilnModel) defaultCopy(extra);
    }

    /** The model as read on the driver (for its signature, manifest and content hash). */
    public KilnFormat.ModelFile modelFile() {
        return handle(SparkSession.active()).driverFile();
    }
}
