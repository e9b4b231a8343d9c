package dev.kiln.spark;

import org.apache.spark.TaskContext;
import org.apache.spark.api.java.function.FlatMapFunction;
import org.apache.spark.rdd.RDD;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.catalyst.expressions.Attribute;
import org.apache.spark.sql.catalyst.expressions.AttributeSet;
import org.apache.spark.sql.execution.SparkPlan;
import scala.collection.immutable.IndexedSeq;
import scala.collection.immutable.Seq;

import java.util.Iterator;
import java.util.Objects;

/**
 * The physical plan node of {@link KilnScore}: each partition of its child runs through a {@link PartitionScorer},
 * whose rows are already {@code UnsafeRow}s of this node's output, so no projection follows (an RDD-backed
 * DataFrame would copy every row once more).
 */
public final class KilnScoreExec extends SparkPlan {
    private static final long serialVersionUID = 1L;

    private final SparkPlan child;
    private final Seq<Attribute> inputs;
    private final Seq<Attribute> predictions;
    private final ScoringPlan plan;
    private final Seq<Attribute> output;

    public KilnScoreExec(SparkPlan child, Seq<Attribute> inputs, Seq<Attribute> predictions, ScoringPlan plan) {
        this.child = child;
        this.inputs = inputs;
        this.predictions = predictions;
        this.plan = plan;
        this.output = SparkInternals.concat(inputs, predictions);
    }

    public SparkPlan child() {
        return child;
    }

    @Override
    public RDD<InternalRow> doExecute() {
        ScoringPlan scoring = plan;
        FlatMapFunction<Iterator<InternalRow>, InternalRow> score = rows -> new PartitionScorer(scoring, rows, TaskContext.get());
        return child.execute().toJavaRDD().mapPartitions(score).rdd();
    }

    /** Rows stay where and in the order they were, and keep every child column: the child's partitioning holds. */
    @Override
    public org.apache.spark.sql.catalyst.plans.physical.Partitioning outputPartitioning() {
        return child.outputPartitioning();
    }

    @Override
    public Seq<org.apache.spark.sql.catalyst.expressions.SortOrder> outputOrdering() {
        return child.outputOrdering();
    }

    @Override
    public Seq<Attribute> output() {
        return output;
    }

    @Override
    public Seq<SparkPlan> children() {
        return SparkInternals.seq(child);
    }

    @Override
    public SparkPlan withNewChildrenInternal(IndexedSeq<SparkPlan> children) {
        return new KilnScoreExec(children.apply(0), inputs, predictions, plan);
    }

    @Override
    public AttributeSet producedAttributes() {
        return SparkInternals.attributeSet(predictions);
    }

    @Override
    public String simpleString(int maxFields) {
        return SparkInternals.describe("KilnScore", plan, inputs, predictions, maxFields);
    }

    @Override
    public String verboseString(int maxFields) {
        return simpleString(maxFields);
    }

    @Override
    public int productArity() {
        return 4;
    }

    @Override
    public Object productElement(int n) {
        return switch (n) {
            case 0 -> child;
            case 1 -> inputs;
            case 2 -> predictions;
            case 3 -> plan;
            default -> throw new IndexOutOfBoundsException(n);
        };
    }

    @Override
    public boolean canEqual(Object other) {
        return other instanceof KilnScoreExec;
    }

    @Override
    public boolean equals(Object other) {
        return other instanceof KilnScoreExec that && child.equals(that.child) && inputs.equals(that.inputs)
                && predictions.equals(that.predictions) && plan == that.plan;
    }

    @Override
    public int hashCode() {
        return Objects.hash(child, inputs, predictions, System.identityHashCode(plan));
    }
}
