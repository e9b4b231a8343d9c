package dev.kiln.spark;

import org.apache.spark.sql.catalyst.expressions.Attribute;
import org.apache.spark.sql.catalyst.expressions.NamedExpression;
import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan;
import org.apache.spark.sql.execution.ProjectExec;
import org.apache.spark.sql.execution.SparkPlan;
import org.apache.spark.sql.execution.SparkStrategy;
import scala.collection.immutable.Seq;

/**
 * Plans {@link KilnScore} as {@link KilnScoreExec}. Installed in a session's extra strategies by
 * {@link SparkInternals#scored} the first time a model is applied in it. Should the optimizer have reordered the
 * child's columns, a projection puts them back in the order the scorer's column positions assume.
 */
public final class KilnScoreStrategy extends SparkStrategy {
    @Override
    @SuppressWarnings("unchecked")
    public Seq<SparkPlan> apply(LogicalPlan plan) {
        if (!(plan instanceof KilnScore score)) {
            return SparkInternals.seq();
        }
        SparkPlan child = planLater(score.child());
        Seq<Attribute> inputs = score.inputs();
        if (!SparkInternals.sameAttributes(score.child().output(), inputs)) {
            child = new ProjectExec((Seq<NamedExpression>) (Seq<?>) inputs, child);
        }
        return SparkInternals.seq(new KilnScoreExec(child, inputs, score.predictions(), score.plan()));
    }
}
