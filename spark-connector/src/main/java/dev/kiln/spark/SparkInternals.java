package dev.kiln.spark;

import dev.kiln.engine.backend.cpu.FiniteCheck;
import org.apache.spark.rdd.RDD;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.catalyst.expressions.UnsafeArrayData;
import org.apache.spark.sql.catalyst.util.ArrayData;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.unsafe.Platform;

import org.apache.spark.sql.ExperimentalMethods;
import org.apache.spark.sql.catalyst.expressions.Attribute;
import org.apache.spark.sql.catalyst.expressions.AttributeSet;
import org.apache.spark.sql.catalyst.expressions.Expression;
import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan;
import org.apache.spark.sql.catalyst.types.DataTypeUtils;
import org.apache.spark.sql.execution.SparkPlan;
import org.apache.spark.sql.execution.SparkStrategy;
import scala.collection.immutable.Seq;

import java.nio.ByteBuffer;

/**
 * The Spark-internal APIs of the fast path, checked here: adding a plan node to a DataFrame's plan ({@link KilnScore},
 * planned by {@link KilnScoreStrategy} as {@link KilnScoreExec}, whose partitions read and write Spark's internal rows),
 * reading a DataFrame as internal rows and building one from them (the fallback when the plan node is turned off), and
 * bulk-copying the body of an {@code UnsafeArrayData}. The node classes themselves extend Catalyst's, and
 * {@link OutputRows} writes output rows in {@code UnsafeRow}'s byte layout (OutputRowsTest compares it byte for byte
 * with Spark's own projection, so a layout change fails loudly). {@link PublicRowPath} uses none of the DataFrame-level
 * ones and builds no UnsafeRow; of this class it only reaches {@link #copyFloatsChecked}'s element-by-element branch (its
 * arrays are not UnsafeArrayData). They avoid Spark's boxing of every element of a nullable
 * {@code array<float>} (measured 3.5 µs per 512-float row against 0.1 µs) and, with the plan node, the copy of every
 * output row an RDD-backed DataFrame makes. {@link #available()} checks them once; when a Spark upgrade changes them,
 * Kiln falls back to the public Row API (slower) and {@code SparkInternalsTest} fails loudly.
 */
public final class SparkInternals {
    private static final boolean AVAILABLE = probe();

    private SparkInternals() {
    }

    private static boolean probe() {
        try {
            Class.forName("org.apache.spark.sql.classic.SparkSession").getMethod("internalCreateDataFrame", RDD.class, StructType.class, boolean.class);
            Class.forName("org.apache.spark.sql.classic.Dataset").getMethod("queryExecution");
            UnsafeArrayData.class.getMethod("getBaseObject");
            UnsafeArrayData.class.getMethod("getBaseOffset");
            UnsafeArrayData.calculateHeaderPortionInBytes(1);
            Class.forName("org.apache.spark.sql.classic.SparkSession").getMethod("experimental");
            Class.forName("org.apache.spark.sql.classic.SparkSession").getMethod("extensions");
            org.apache.spark.sql.SparkSessionExtensions.class.getMethod("injectPlannerStrategy", scala.Function1.class);
            org.apache.spark.sql.ExperimentalMethods.class.getMethod("extraStrategies_$eq", Seq.class);
            Class.forName("org.apache.spark.sql.classic.Dataset").getMethod("ofRows", Class.forName("org.apache.spark.sql.classic.SparkSession"), LogicalPlan.class);
            DataTypeUtils.class.getMethod("toAttributes", StructType.class);
            // Spark copies plan nodes through their constructor: the node classes must link against this Spark.
            KilnScore.class.getConstructor(LogicalPlan.class, Seq.class, Seq.class, ScoringPlan.class);
            KilnScoreExec.class.getConstructor(SparkPlan.class, Seq.class, Seq.class, ScoringPlan.class);
            return true;
        } catch (ReflectiveOperationException | LinkageError e) {
            return false;
        }
    }

    /** Whether the internal-row path works with this Spark. */
    public static boolean available() {
        return AVAILABLE;
    }

    public static RDD<InternalRow> toInternalRdd(Dataset<Row> frame) {
        return ((org.apache.spark.sql.classic.Dataset<Row>) frame).queryExecution().toRdd();
    }

    public static Dataset<Row> fromInternalRdd(SparkSession spark, RDD<InternalRow> rows, StructType schema) {
        return ((org.apache.spark.sql.classic.SparkSession) spark).internalCreateDataFrame(rows, schema, false);
    }

    /** The extensions objects (shared by a session and the sessions made from it) Kiln's strategy was injected into. */
    private static final java.util.Set<Object> EXTENDED = java.util.Collections.newSetFromMap(new java.util.WeakHashMap<>());

    /**
     * {@code frame} with the {@link KilnScore} node on top: its columns, then {@code predictions}' columns. Installs
     * {@link KilnScoreStrategy} in the session the first time, and in its extensions, which the sessions made from it
     * later ({@code newSession()}) are built with; other sessions need {@link KilnSparkExtensions}.
     */
    static Dataset<Row> scored(SparkSession spark, Dataset<Row> frame, ScoringPlan plan, StructType predictions) {
        org.apache.spark.sql.classic.SparkSession session = (org.apache.spark.sql.classic.SparkSession) spark;
        ExperimentalMethods experimental = session.experimental();
        synchronized (experimental) {
            Seq<SparkStrategy> strategies = experimental.extraStrategies();
            if (!strategies.exists(s -> s instanceof KilnScoreStrategy)) {
                java.util.List<SparkStrategy> extended = new java.util.ArrayList<>(scala.jdk.javaapi.CollectionConverters.asJava(strategies));
                extended.add(new KilnScoreStrategy());
                experimental.extraStrategies_$eq(seq(extended));
            }
        }
        synchronized (EXTENDED) {
            if (EXTENDED.add(session.extensions())) {
                session.extensions().injectPlannerStrategy(KilnSparkExtensions.strategy());
            }
        }
        LogicalPlan child = ((org.apache.spark.sql.classic.Dataset<Row>) frame).logicalPlan();
        @SuppressWarnings("unchecked")
        Seq<Attribute> produced = (Seq<Attribute>) (Seq<?>) DataTypeUtils.toAttributes(predictions);
        return org.apache.spark.sql.classic.Dataset.ofRows(session, new KilnScore(child, child.output(), produced, plan));
    }

    static Seq<Attribute> concat(Seq<Attribute> first, Seq<Attribute> second) {
        java.util.List<Attribute> all = new java.util.ArrayList<>(scala.jdk.javaapi.CollectionConverters.asJava(first));
        all.addAll(scala.jdk.javaapi.CollectionConverters.asJava(second));
        return seq(all);
    }

    @SafeVarargs
    static <T> Seq<T> seq(T... values) {
        return seq(java.util.Arrays.asList(values));
    }

    static <T> Seq<T> seq(java.util.List<T> values) {
        return scala.jdk.javaapi.CollectionConverters.asScala(values).toList();
    }

    @SuppressWarnings("unchecked")
    static AttributeSet attributeSet(Seq<Attribute> attributes) {
        return AttributeSet.apply((scala.collection.Iterable<Expression>) (scala.collection.Iterable<?>) attributes);
    }

    /** Whether both lists name the same attributes (by expression id), in the same order. */
    static boolean sameAttributes(Seq<Attribute> a, Seq<Attribute> b) {
        if (a.size() != b.size()) {
            return false;
        }
        for (int i = 0; i < a.size(); i++) {
            if (!a.apply(i).exprId().equals(b.apply(i).exprId())) {
                return false;
            }
        }
        return true;
    }

    /** How a score node shows in {@code explain()}: the model, the input columns read, the columns added. */
    static String describe(String node, ScoringPlan plan, Seq<Attribute> inputs, Seq<Attribute> predictions, int maxFields) {
        StringBuilder read = new StringBuilder();
        for (InputAdapter adapter : plan.inputs()) {
            read.append(read.length() == 0 ? "" : ", ").append(adapter.columns());
        }
        StringBuilder added = new StringBuilder();
        for (int i = 0; i < predictions.size(); i++) {
            Attribute a = predictions.apply(i);
            added.append(i == 0 ? "" : ", ").append(a.name()).append('#').append(a.exprId().id()).append(": ").append(a.dataType().simpleString());
        }
        return node + " " + plan.model().uri() + " [" + read + "] -> [" + added + "], batch " + plan.batchSize() + ", device " + plan.device()
                + ", onError " + (plan.failOnBadRow() ? "fail" : "null");
    }

    /** What {@link #copyFloatsChecked} returns when the array has a null element. */
    public static final int NULL_ELEMENT = -2;

    /**
     * Copies the {@code width} floats of {@code array} to {@code address} (byte {@code offset} of {@code batch}) and
     * screens them for NaN and infinities in the same pass. Returns -1 when all is well, the index of the first
     * non-finite value, or {@link #NULL_ELEMENT}. For an UnsafeArrayData on the heap (what Spark's rows hold): one
     * check of the null bitmap and one vectorized copy.
     */
    public static int copyFloatsChecked(ArrayData array, int width, long address, ByteBuffer batch, int offset) {
        if (array instanceof UnsafeArrayData unsafe && unsafe.getBaseObject() instanceof byte[] bytes) {
            long start = unsafe.getBaseOffset();
            int header = (int) UnsafeArrayData.calculateHeaderPortionInBytes(width);
            for (long word = start + 8; word < start + header; word += 8) {
                if (Platform.getLong(bytes, word) != 0) {
                    return NULL_ELEMENT;
                }
            }
            return FiniteCheck.copyChecked(bytes, (int) (start + header - Platform.BYTE_ARRAY_OFFSET), batch, offset, width);
        }
        if (!copyFloats(array, width, address)) {
            return NULL_ELEMENT;
        }
        return FiniteCheck.firstNonFinite(batch, offset, width);
    }

    /**
     * Copies the {@code width} floats of {@code array} to off-heap {@code address}. Returns false when an element is
     * null (nothing meaningful is copied then). For UnsafeArrayData: one check of the null bitmap and one memory copy.
     */
    public static boolean copyFloats(ArrayData array, int width, long address) {
        if (array instanceof UnsafeArrayData unsafe) {
            Object base = unsafe.getBaseObject();
            long offset = unsafe.getBaseOffset();
            int header = (int) UnsafeArrayData.calculateHeaderPortionInBytes(width);
            for (long word = offset + 8; word < offset + header; word += 8) {
                if (Platform.getLong(base, word) != 0) {
                    return false;
                }
            }
            Platform.copyMemory(base, offset + header, null, address, width * 4L);
            return true;
        }
        for (int i = 0; i < width; i++) {
            if (array.isNullAt(i)) {
                return false;
            }
            Platform.putFloat(null, address + 4L * i, array.getFloat(i));
        }
        return true;
    }

}
