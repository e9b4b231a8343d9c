package dev.kiln.spark;

import org.apache.spark.sql.SparkSessionExtensions;
import scala.Function1;
import scala.runtime.AbstractFunction1;
import scala.runtime.BoxedUnit;

/**
 * Plans {@link KilnScore} in every session of an application: set {@code spark.sql.extensions} to this class. Without
 * it, {@link KilnModel#transform} installs {@link KilnScoreStrategy} in the session it runs in and in the sessions
 * created from it later ({@code newSession()}); this covers sessions created before or elsewhere, such as a Thrift
 * server's reading a global temporary view of scored rows.
 */
public final class KilnSparkExtensions extends AbstractFunction1<SparkSessionExtensions, BoxedUnit> implements java.io.Serializable {
    private static final long serialVersionUID = 1L;

    @Override
    public BoxedUnit apply(SparkSessionExtensions extensions) {
        extensions.injectPlannerStrategy(strategy());
        return BoxedUnit.UNIT;
    }

    /** What {@code injectPlannerStrategy} takes: the strategy for a session. */
    static Function1<org.apache.spark.sql.SparkSession, org.apache.spark.sql.execution.SparkStrategy> strategy() {
        return new AbstractFunction1<>() {
            @Override
            public org.apache.spark.sql.execution.SparkStrategy apply(org.apache.spark.sql.SparkSession session) {
                return new KilnScoreStrategy();
            }
        };
    }
}
