package dev.kiln.spark;

import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;

/** How an executor reads its thread settings, and when it warns about OpenMP spin-waiting. */
class ExecutorThreadsTest {
    @Test
    void ompNumThreadsIsReadUpToItsFirstNumber() {
        assertThat(ExecutorModels.leadingInt("4")).isEqualTo(4);
        assertThat(ExecutorModels.leadingInt(" 4,2")).isEqualTo(4);
        assertThat(ExecutorModels.leadingInt("")).isEqualTo(-1);
        assertThat(ExecutorModels.leadingInt("auto")).isEqualTo(-1);
        assertThat(ExecutorModels.leadingInt(null)).isEqualTo(-1);
    }

    /** One thread per task never spins; several threads without a wait policy get a warning naming the fix. */
    @Test
    void severalThreadsWithoutAWaitPolicyAreWarnedAbout() {
        assertThat(ExecutorModels.waitPolicyWarning(1, null)).isNull();
        assertThat(ExecutorModels.waitPolicyWarning(4, "PASSIVE")).isNull();
        assertThat(ExecutorModels.waitPolicyWarning(4, "ACTIVE")).as("the user's choice").isNull();
        assertThat(ExecutorModels.waitPolicyWarning(2, null)).contains("2 OpenMP threads per task")
                .contains("spark.executorEnv.OMP_WAIT_POLICY=PASSIVE");
        assertThat(ExecutorModels.waitPolicyWarning(2, " ")).isNotNull();
    }
}
