package dev.kiln.spark;

import org.apache.spark.sql.catalyst.analysis.MultiInstanceRelation;
import org.apache.spark.sql.catalyst.expressions.Attribute;
import org.apache.spark.sql.catalyst.expressions.AttributeSet;
import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan;
import scala.collection.immutable.IndexedSeq;
import scala.collection.immutable.Seq;

import java.util.Objects;

/**
 * The logical plan node of a {@link KilnModel} transform: its child's columns, then the prediction columns (and the
 * error column). {@code explain()} shows it as {@code KilnScore}; {@link KilnScoreStrategy} plans it as a
 * {@link KilnScoreExec}. It reads every column of its child ({@link #references()}), so column pruning never removes
 * a column the scorer reads by position, and it changes no row, so it can sit under any query.
 * <p>
 * A Spark-internal extension point (catalyst's {@code LogicalPlan}), kept beside {@link SparkInternals}: its
 * constructor's arguments are its product elements, which is how Spark copies plan nodes.
 */
public final class KilnScore extends LogicalPlan implements MultiInstanceRelation {
    private static final long serialVersionUID = 1L;

    private final LogicalPlan child;
    private final Seq<Attribute> inputs;
    private final Seq<Attribute> predictions;
    private final ScoringPlan plan;
    private final Seq<Attribute> output;

    public KilnScore(LogicalPlan child, Seq<Attribute> inputs, Seq<Attribute> predictions, ScoringPlan plan) {
        this.child = child;
        this.inputs = inputs;
        this.predictions = predictions;
        this.plan = plan;
        this.output = SparkInternals.concat(inputs, predictions);
    }

    public LogicalPlan child() {
        return child;
    }

    Seq<Attribute> inputs() {
        return inputs;
    }

    Seq<Attribute> predictions() {
        return predictions;
    }

    ScoringPlan plan() {
        return plan;
    }

    /**
     * The same node with fresh ids for the prediction columns: Spark's analyzer asks for one when the node appears
     * twice in a query (a self-join, {@code intersect}, {@code except}), so both sides' columns stay distinct.
     */
    @Override
    public LogicalPlan newInstance() {
        java.util.List<Attribute> fresh = new java.util.ArrayList<>();
        for (Attribute a : scala.jdk.javaapi.CollectionConverters.asJava(predictions)) {
            fresh.add(a.newInstance());
        }
        return new KilnScore(child, inputs, SparkInternals.seq(fresh), plan);
    }

    @Override
    public Seq<Attribute> output() {
        return output;
    }

    @Override
    public Seq<LogicalPlan> children() {
        return SparkInternals.seq(child);
    }

    @Override
    public LogicalPlan withNewChildrenInternal(IndexedSeq<LogicalPlan> children) {
        return new KilnScore(children.apply(0), inputs, predictions, plan);
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
        return other instanceof KilnScore;
    }

    @Override
    public boolean equals(Object other) {
        return other instanceof KilnScore that && child.equals(that.child) && inputs.equals(that.inputs)
                && predictions.equals(that.predictions) && plan == that.plan;
    }

    @Override
    public int hashCode() {
        return Objects.hash(child, inputs, predictions, System.identityHashCode(plan));
    }
}
