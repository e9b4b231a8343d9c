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
    }
}
