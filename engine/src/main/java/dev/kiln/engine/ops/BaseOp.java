package dev.kiln.engine.ops;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;
import dev.kiln.engine.ir.TensorType;
import dev.kiln.engine.tensor.DType;

import java.util.List;

/** Common plumbing for ops: name, docs, arity and dtype checks. */
abstract class BaseOp implements OpDef {
    private final String name;
    private final String summary;
    private final List<String> inputNames;
    private final List<AttributeSpec> attributes;
    private final int requiredInputs;

    BaseOp(String name, String summary, List<String> inputNames, int requiredInputs, List<AttributeSpec> attributes) {
        this.name = name;
        this.summary = summary;
        this.inputNames = List.copyOf(inputNames);
        this.requiredInputs = requiredInputs;
        this.attributes = List.copyOf(attributes);
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public String summary() {
        return summary;
    }

    @Override
    public List<String> inputNames() {
        return inputNames;
    }

    @Override
    public List<AttributeSpec> attributes() {
        return attributes;
    }

    void checkArity(List<TensorType> inputs) {
        if (inputs.size() < requiredInputs || inputs.size() > inputNames.size()) {
            throw KilnException.of(ErrorCode.INVALID_GRAPH, "%s expects %s inputs %s but got %d",
                    name, requiredInputs == inputNames.size() ? String.valueOf(requiredInputs) : requiredInputs + ".." + inputNames.size(),
                    inputNames, inputs.size());
        }
        for (int i = 0; i < inputs.size(); i++) {
            if (inputs.get(i).dtype() != DType.FLOAT32) {
                throw KilnException.of(ErrorCode.UNSUPPORTED_OP, "%s input '%s' is %s; Kiln's kernels support float32 only",
                        name, inputNames.get(i), inputs.get(i));
            }
        }
    }

    static AttributeSpec attr(String name, String type, boolean required, String doc) {
        return new AttributeSpec(name, type, required, doc);
    }

    static KilnException shapeError(String format, Object... args) {
        return KilnException.of(ErrorCode.SHAPE_MISMATCH, format, args);
    }
}
