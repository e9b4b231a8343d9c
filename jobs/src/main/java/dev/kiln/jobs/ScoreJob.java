package dev.kiln.jobs;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;
import dev.kiln.spark.KilnModel;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SaveMode;
import org.apache.spark.sql.SparkSession;

import java.io.PrintStream;
import java.util.Arrays;
import java.util.Set;

/**
 * Scores a table with a Kiln model: the spark-submit main class, and {@code bin/kiln score} (same code path).
 * <pre>
 * spark-submit --class dev.kiln.jobs.ScoreJob kiln-jobs.jar --model hdfs://nn/m.kiln --input hdfs://nn/in --output hdfs://nn/out
 * </pre>
 */
public final class ScoreJob implements KilnCli.Command {
    @Override
    public String name() {
        return "score";
    }

    @Override
    public String summary() {
        return "score a Parquet table with a model on Spark (the spark-submit main class dev.kiln.jobs.ScoreJob)";
    }

    @Override
    public String usage() {
        return String.join("\n",
                "Usage: bin/kiln score --model URI --input URI --output URI [--input-col C ...] [--output-col C ...]",
                "                      [--batch-size N] [--device auto|cpu|cuda:N] [--on-error fail|null] [--output-transform none|argmax|softmax]",
                "                      [--key-col C] [--master M] [--defaults FILE] [--overwrite]",
                "",
                "  --input/--output  Parquet tables (any Hadoop URI); the output holds every input column plus the predictions",
                "  --input-col       input column(s) for the model's inputs, in order (default: features), or INPUT=COLUMN naming",
                "                    a model input; repeat or comma-separate",
                "  --output-col      prediction column(s) for the model's first outputs (default: prediction), or OUTPUT=COLUMN",
                "                    naming a model output; repeat or comma-separate",
                "  --master          Spark master when not run by spark-submit (default local[*])",
                "  --defaults        Kiln defaults (batch size, device, onError, broadcast threshold); default $KILN_CONF_DIR/kiln-defaults.properties",
                "",
                "Example:",
                "  bin/kiln score --model kiln-demo/mlp.kiln --input kiln-demo/rows.parquet --output kiln-demo/scored.parquet --input-col features");
    }

    /**
     * Executor settings this job adds when the submitted configuration ({@code submitted}: spark-submit's --conf and
     * spark-defaults.conf, as the driver sees them) leaves them out: OpenMP threads that sleep instead of spin-waiting
     * between calls (docs/TUNING.md: spinning measured 5x slower with two threads per core). Read when an executor JVM
     * starts, so they must be in the conf before the session exists.
     */
    static java.util.Map<String, String> executorDefaults(org.apache.spark.SparkConf submitted) {
        java.util.Map<String, String> defaults = new java.util.LinkedHashMap<>();
        if (!submitted.contains("spark.executorEnv.OMP_WAIT_POLICY")) {
            defaults.put("spark.executorEnv.OMP_WAIT_POLICY", "PASSIVE");
        }
        return defaults;
    }

    public static void main(String[] args) {
        System.exit(KilnCli.run(prepend("score", args), System.out, System.err));
    }

    private static String[] prepend(String first, String[] rest) {
        String[] all = new String[rest.length + 1];
        all[0] = first;
        System.arraycopy(rest, 0, all, 1, rest.length);
        return all;
    }

    @Override
    public int run(String[] argv, PrintStream out) {
        Args args = Args.parse(name(), argv, Set.of("model", "input", "output", "input-col", "output-col", "batch-size", "device", "on-error",
                "output-transform", "key-col", "master", "defaults"), Set.of("overwrite"));
        java.util.Properties defaults = defaults(args.get("defaults", null));
        String model = args.required("model");
        String input = args.required("input");
        String output = args.required("output");
        String[] inputCols = args.getList("input-col", "features").toArray(new String[0]);
        String[] outputCols = args.getList("output-col", "prediction").toArray(new String[0]);
        SparkSession.Builder builder = SparkSession.builder().appName("kiln-score");
        if (args.has("master") || System.getProperty("spark.master") == null) {
            builder.master(args.get("master", "local[*]"));
        }
        executorDefaults(new org.apache.spark.SparkConf()).forEach(builder::config);
        SparkSession spark = builder.getOrCreate();
        try {
            Dataset<Row> rows;
            try {
                rows = spark.read().parquet(input);
            } catch (Exception e) {
                // Spark's AnalysisException (missing path, not Parquet) is a checked exception to Java.
                throw new KilnException(ErrorCode.IO_ERROR, "Cannot read input table " + input + ": " + firstLine(e.getMessage()), e);
            }
            KilnModel kiln = new KilnModel().setModelUri(model).setInputCols(inputCols).setOutputCols(outputCols)
                    .setDevice(args.get("device", defaults.getProperty("kiln.device", "auto")))
                    .setOnError(args.get("on-error", defaults.getProperty("kiln.onError", "fail")))
                    .setBroadcastThreshold(Long.parseLong(defaults.getProperty("kiln.broadcastThreshold", String.valueOf(dev.kiln.spark.ModelHandle.DEFAULT_BROADCAST_THRESHOLD))))
                    .setOutputTransform(args.get("output-transform", "none"));
            // Unset (no option, no kiln.batchSize): KilnModel sizes batches to its input (1 MiB of it).
            String batchSize = args.has("batch-size") ? String.valueOf(args.getInt("batch-size", 0)) : defaults.getProperty("kiln.batchSize", "").trim();
            if (!batchSize.isEmpty()) {
                try {
                    kiln.setBatchSize(Integer.parseInt(batchSize));
                } catch (NumberFormatException e) {
                    throw KilnException.of(ErrorCode.INVALID_ARGUMENT, "kiln.batchSize in the defaults file must be a positive integer, got '%s'", batchSize);
                }
            }
            if (args.has("key-col")) {
                kiln.setKeyCol(args.get("key-col", null));
            }
            long start = System.nanoTime();
            kiln.transform(rows).write().mode(args.flag("overwrite") ? SaveMode.Overwrite : SaveMode.ErrorIfExists).parquet(output);
            double seconds = (System.nanoTime() - start) / 1e9;
            long scored = kiln.lastMetrics().rows();
            out.printf("Scored %,d rows with %s in %.1f s (%,.0f rows/s) -> %s%n", scored, model, seconds, scored / seconds, output);
            out.println(kiln.lastMetrics().summary());
            out.printf("Input columns %s, prediction columns %s%n", Arrays.toString(inputCols), Arrays.toString(outputCols));
            return 0;
        } finally {
            spark.stop();
        }
    }

    /**
     * Kiln's defaults: the file given with --defaults, else kiln-defaults.properties in KILN_CONF_DIR (bin/kiln points it
     * at conf/), else built-in values.
     */
    static java.util.Properties defaults(String file) {
        java.util.Properties properties = new java.util.Properties();
        java.nio.file.Path path = file != null ? java.nio.file.Path.of(file)
                : System.getenv("KILN_CONF_DIR") == null ? null : java.nio.file.Path.of(System.getenv("KILN_CONF_DIR"), "kiln-defaults.properties");
        if (path == null || (file == null && !java.nio.file.Files.isRegularFile(path))) {
            return properties;
        }
        try (java.io.Reader reader = java.nio.file.Files.newBufferedReader(path)) {
            properties.load(reader);
        } catch (java.io.IOException e) {
            throw new KilnException(ErrorCode.IO_ERROR, "Cannot read defaults file " + path + ": " + e.getMessage(), e);
        }
        return properties;
    }

    static String firstLine(String message) {
        if (message == null) {
            return "";
        }
        int newline = message.indexOf('\n');
        return newline < 0 ? message : message.substring(0, newline);
    }
}
