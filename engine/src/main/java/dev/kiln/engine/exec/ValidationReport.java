package dev.kiln.engine.exec;

import java.util.List;

/**
 * Eager versus compiled on the same inputs: per output, the largest absolute difference, the largest relative
 * difference ({@code |compiled - eager| / max(|eager|, 1e-6)}), and whether every element is within
 * {@code atol + rtol * |eager|} (the allclose rule).
 */
public record ValidationReport(int samples, double rtol, double atol, List<OutputError> outputs) {
    public record OutputError(String name, long elements, double maxAbsError, double maxRelError, boolean withinTolerance) { }

    public boolean passed() {
        return outputs.stream().allMatch(OutputError::withinTolerance);
    }

    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder(String.format("Validation (eager vs compiled, %d sample batch%s, rtol %.0e, atol %.0e): %s%n",
                samples, samples == 1 ? "" : "es", rtol, atol, passed() ? "PASSED" : "FAILED"));
        for (OutputError o : outputs) {
            sb.append(String.format("  %-12s %8d values  max abs err %.3e  max rel err %.3e  %s%n",
                    o.name(), o.elements(), o.maxAbsError(), o.maxRelError(), o.withinTolerance() ? "ok" : "OUT OF TOLERANCE"));
        }
        return sb.toString();
    }
}
