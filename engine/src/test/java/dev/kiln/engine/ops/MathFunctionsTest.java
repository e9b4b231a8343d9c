package dev.kiln.engine.ops;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

class MathFunctionsTest {
    /** Reference values of erf from Abramowitz and Stegun, table 7.1, and standard tables (15 digits). */
    @ParameterizedTest
    @CsvSource({
        "0.0, 0.0",
        "0.1, 0.112462916018285",
        "0.5, 0.520499877813047",
        "1.0, 0.842700792949715",
        "1.5, 0.966105146475311",
        "2.0, 0.995322265018953",
        "2.9, 0.999958902121900",
        "3.0, 0.999977909503001",
        "3.5, 0.999999256901628",
        "5.0, 0.999999999998463",
        "-0.5, -0.520499877813047",
        "-2.0, -0.995322265018953"})
    void erfMatchesTables(double x, double expected) {
        assertThat(MathFunctions.erf(x)).isCloseTo(expected, within(5e-9));
        assertThat(MathFunctions.erfFast(x)).as("erfFast").isCloseTo(expected, within(2e-7 * Math.abs(expected) + 1e-15));
    }

    /** erfc = 1 - erf from the same tables, and tail values from standard tables; fractional error under 1.2e-7. */
    @ParameterizedTest
    @CsvSource({
        "0.0, 1.0",
        "0.1, 0.887537083981715",
        "0.5, 0.479500122186953",
        "1.0, 0.157299207050285",
        "2.0, 0.004677734981047",
        "3.0, 2.20904969985854e-5",
        "5.0, 1.53745979442803e-12",
        "8.0, 1.12242971729829e-29",
        "-0.5, 1.520499877813047",
        "-2.0, 1.995322265018953"})
    void erfcFastHasTheFractionalErrorItPromises(double x, double expected) {
        assertThat(Math.abs(MathFunctions.erfcFast(x) - expected) / expected).as("erfc(%s)", x).isLessThan(1.3e-7);
    }

    @org.junit.jupiter.api.Test
    void geluFastAgreesWithTheExactFormula() {
        // Against 0.5 x (1 + erf(x / sqrt 2)) with the series erf, where 1 + erf does not cancel (x >= -2).
        for (double x = -2; x <= 10; x += 0.001) {
            float v = (float) x;
            double exact = 0.5 * v * (1.0 + MathFunctions.erf(v * 0.7071067811865476));
            assertThat(Math.abs(MathFunctions.geluFast(v) - exact)).as("gelu(%s)", v).isLessThanOrEqualTo(3e-7 * Math.abs(exact) + 1e-12);
        }
        // Far left: x Phi(x) with Phi(-6) = 9.86587645037698e-10.
        assertThat((double) MathFunctions.geluFast(-6f)).isCloseTo(-6 * 9.86587645037698e-10, within(6 * 9.86587645037698e-10 * 3e-7));
        assertThat(MathFunctions.geluFast(Float.NaN)).isNaN();
    }
}
