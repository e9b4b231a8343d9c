package dev.kiln.engine.exec;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;
import dev.kiln.engine.nn.Block;
import dev.kiln.engine.tensor.Tensor;
import dev.kiln.engine.tensor.TensorData;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Runs a block eagerly (ND4J's kernels) and its compiled model (Kiln's kernels) on the same inputs and reports the
 * differences: the driver-side check that compilation preserved the model's meaning.
 */
public final class Validator {
    public static final double DEFAULT_RTOL = 1e-5;
    public static final double DEFAULT_ATOL = 1e-6;

    private Validator() {
    }

    public static ValidationReport validate(Block block, CompiledModel model, List<Map<String, TensorData>> samples) {
        return validate(block, model, samples, DEFAULT_RTOL, DEFAULT_ATOL);
    }

    public static ValidationReport validate(Block block, CompiledModel model, List<Map<String, TensorData>> samples, double rtol, double atol) {
        if (block.isHybridized()) {
            throw KilnException.of(ErrorCode.INVALID_ARGUMENT, "Validate against the block before hybridize(): a hybridized block runs compiled, not eagerly");
        }
        return compare(sample -> {
            List<Tensor> inputs = new ArrayList<>();
            for (String inputName : model.graph().inputNames()) {
                inputs.add(Tensor.of(sample.get(inputName)));
            }
            List<float[]> out = new ArrayList<>();
            for (Tensor t : block.forwardAll(inputs.toArray(new Tensor[0]))) {
                out.add(t.toFloatArray());
            }
            return out;
        }, model, samples, rtol, atol);
    }

    /**
     * Compares {@code model} with a reference model on the same inputs: for graphs without an eager block (imported
     * ONNX), the reference is the unoptimized graph run by the reference kernels.
     */
    public static ValidationReport validate(CompiledModel reference, CompiledModel model, List<Map<String, TensorData>> samples) {
        return compare(sample -> {
            List<float[]> out = new ArrayList<>();
            for (TensorData t : reference.run(sample).values()) {
                out.add(t.toFloatArray());
            }
            return out;
        }, model, samples, DEFAULT_RTOL, DEFAULT_ATOL);
    }

    private static ValidationReport compare(java.util.function.Function<Map<String, TensorData>, List<float[]>> reference, CompiledModel model,
            List<Map<String, TensorData>> samples, double rtol, double atol) {
        List<String> names = model.graph().outputNames();
        double[] maxAbs = new double[names.size()];
        double[] maxRel = new double[names.size()];
        long[] counts = new long[names.size()];
        boolean[] ok = new boolean[names.size()];
        java.util.Arrays.fill(ok, true);
        for (Map<String, TensorData> sample : samples) {
            List<float[]> eager = reference.apply(sample);
            Map<String, TensorData> compiled = model.run(sample);
            for (int i = 0; i < names.size(); i++) {
                float[] expected = eager.get(i);
                float[] actual = compiled.get(names.get(i)).toFloatArray();
                if (expected.length != actual.length) {
                    throw KilnException.of(ErrorCode.SHAPE_MISMATCH, "Output '%s': eager has %d values, compiled %d", names.get(i), expected.length, actual.length);
                }
                counts[i] += expected.length;
                for (int j = 0; j < expected.length; j++) {
                    double e = expected[j];
                    double a = actual[j];
                    if (Double.isNaN(e) || Double.isNaN(a)) {
                        ok[i] &= Double.isNaN(e) == Double.isNaN(a);
                        continue;
                    }
                    double abs = Math.abs(a - e);
                    maxAbs[i] = Math.max(maxAbs[i], abs);
                    maxRel[i] = Math.max(maxRel[i], abs / Math.max(Math.abs(e), 1e-6));
                    ok[i] &= abs <= atol + rtol * Math.abs(e);
                }
            }
        }
        List<ValidationReport.OutputError> outputs = new ArrayList<>();
        for (int i = 0; i < names.size(); i++) {
            outputs.add(new ValidationReport.OutputError(names.get(i), counts[i], maxAbs[i], maxRel[i], ok[i]));
        }
        return new ValidationReport(samples.size(), rtol, atol, outputs);
    }
}
