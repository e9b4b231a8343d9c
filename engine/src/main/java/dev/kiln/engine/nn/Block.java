package dev.kiln.engine.nn;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.Kiln;
import dev.kiln.engine.KilnException;
import dev.kiln.engine.exec.CompiledModel;
import dev.kiln.engine.ir.Signature;
import dev.kiln.engine.tensor.CallScope;
import dev.kiln.engine.tensor.Dim;
import dev.kiln.engine.tensor.Shape;
import dev.kiln.engine.tensor.Tensor;
import dev.kiln.engine.tensor.TensorData;
import dev.kiln.engine.trace.Tracer;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;

/**
 * A piece of a model. Its lifecycle: construct (children and parameters registered by name), optionally load weights
 * ({@link #loadParameters}), then call {@link #forward}. Forward runs eagerly on ND4J, op by op, unless the block is
 * {@link #hybridize() hybridized}: then the first call per input signature traces {@link #forwardInternal} into a
 * graph and compiles it, and later calls run the compiled graph (Java side effects in forwardInternal no longer run).
 * <p>
 * Subclasses write only {@link #forwardInternal}; {@code forward} is final so that block scoping, input checks and
 * hybridization cannot be skipped. Parameter names follow PyTorch's {@code state_dict}: children's names joined by
 * dots ({@code 0.weight}).
 */
public abstract class Block {
    private final Map<String, Block> children = new LinkedHashMap<>();
    private final Map<String, Parameter> parameters = new LinkedHashMap<>();
    private String prefix = "";
    private Block parent;
    private long seed;
    private boolean hybridized;
    private final Map<List<Shape>, CompiledModel> compiled = new ConcurrentHashMap<>();

    /** The block's computation, written once against {@link Tensor}; runs eagerly or while tracing. */
    protected abstract List<Tensor> forwardInternal(List<Tensor> inputs);

    /** Checks the inputs before forward; blocks override to give errors that name them. */
    protected void checkInputs(List<Tensor> inputs) {
    }

    /** Called when a parameter is loaded with {@code shape}, so blocks with deferred shapes can learn them. */
    protected void acceptLoaded(Parameter parameter, long[] shape) {
    }

    /** Runs the block on one or more inputs and returns its single output. */
    public final Tensor forward(Tensor... inputs) {
        List<Tensor> outputs = forwardAll(inputs);
        if (outputs.size() != 1) {
            throw KilnException.of(ErrorCode.SHAPE_MISMATCH, "%s returns %d outputs; use forwardAll", describe(), outputs.size());
        }
        return outputs.get(0);
    }

    /** Runs the block and returns all its outputs. */
    public final List<Tensor> forwardAll(Tensor... inputs) {
        List<Tensor> in = List.of(inputs);
        if (hybridized && Tracer.active() == null && in.stream().noneMatch(Tensor::isSymbolic)) {
            return runCompiled(in);
        }
        CallScope.push(kind(), path());
        try {
            checkInputs(in);
            return forwardInternal(in);
        } finally {
            CallScope.pop();
        }
    }

    // ---- hybridization -------------------------------------------------------------------------------------------

    /** Compile on the next call: each new input signature (batch symbolic) is traced and compiled once. */
    public Block hybridize() {
        this.hybridized = true;
        return this;
    }

    public boolean isHybridized() {
        return hybridized;
    }

    private List<Tensor> runCompiled(List<Tensor> inputs) {
        List<Shape> key = new ArrayList<>();
        for (Tensor t : inputs) {
            key.add(t.shape());
        }
        CompiledModel model = compiled.computeIfAbsent(symbolicKey(key), this::compileFor);
        Map<String, TensorData> feed = new LinkedHashMap<>();
        for (int i = 0; i < inputs.size(); i++) {
            feed.put(model.signature().inputs().get(i).name(), inputs.get(i).toData());
        }
        Map<String, TensorData> results = model.run(feed);
        List<Tensor> out = new ArrayList<>();
        for (TensorData data : results.values()) {
            out.add(Tensor.of(data));
        }
        return out;
    }

    /** The signature key: the first axis of every input becomes the symbolic batch. */
    private static List<Shape> symbolicKey(List<Shape> shapes) {
        List<Shape> key = new ArrayList<>();
        for (Shape s : shapes) {
            key.add(s.rank() == 0 ? s : s.withDim(0, Dim.symbol(Shape.BATCH)));
        }
        return key;
    }

    private CompiledModel compileFor(List<Shape> shapes) {
        Signature.Builder signature = Signature.builder();
        for (int i = 0; i < shapes.size(); i++) {
            signature.input(shapes.size() == 1 ? "input" : "input_" + i, shapes.get(i));
        }
        return Kiln.compile(this, signature.build());
    }

    // ---- structure -----------------------------------------------------------------------------------------------

    protected final <B extends Block> B addChild(String name, B child) {
        if (children.containsKey(name) || parameters.containsKey(name)) {
            throw KilnException.of(ErrorCode.INVALID_ARGUMENT, "%s already has a child or parameter named '%s'", describe(), name);
        }
        Block block = child;
        children.put(name, block);
        block.parent = this;
        block.setPrefix(prefix + name + ".");
        return child;
    }

    protected final Parameter addParameter(String name, long[] shape, long fanIn) {
        return register(name, new Parameter(this, name, shape, fanIn));
    }

    /** A parameter whose initial elements all equal {@code value} (as PyTorch initialises norms), until weights are loaded. */
    protected final Parameter addFilledParameter(String name, long[] shape, float value) {
        return register(name, new Parameter(this, name, shape, 0, value));
    }

    private Parameter register(String name, Parameter p) {
        if (children.containsKey(name) || parameters.containsKey(name)) {
            throw KilnException.of(ErrorCode.INVALID_ARGUMENT, "%s already has a child or parameter named '%s'", describe(), name);
        }
        parameters.put(name, p);
        return p;
    }

    private void setPrefix(String newPrefix) {
        this.prefix = newPrefix;
        for (Map.Entry<String, Block> e : children.entrySet()) {
            e.getValue().setPrefix(newPrefix + e.getKey() + ".");
        }
    }

    String prefix() {
        return prefix;
    }

    /** The block's place in its model, e.g. {@code 0} or {@code encoder.attn}; empty for the root. */
    public String path() {
        return prefix.isEmpty() ? "" : prefix.substring(0, prefix.length() - 1);
    }

    Block root() {
        Block b = this;
        while (b.parent != null) {
            b = b.parent;
        }
        return b;
    }

    long seed() {
        return seed;
    }

    /** Seeds the initial values of parameters that are not loaded (deterministic for a given seed). */
    public Block setSeed(long seed) {
        this.seed = seed;
        return this;
    }

    public Map<String, Block> children() {
        return Collections.unmodifiableMap(children);
    }

    /** Every parameter of this block and its descendants, by state_dict name, in registration order. */
    public Map<String, Parameter> parameters() {
        Map<String, Parameter> all = new LinkedHashMap<>();
        collect(all);
        return all;
    }

    private void collect(Map<String, Parameter> into) {
        for (Parameter p : parameters.values()) {
            into.put(p.name(), p);
        }
        for (Block child : children.values()) {
            child.collect(into);
        }
    }

    /**
     * Loads weights by state_dict name. Strict: a missing, unexpected or mis-shaped tensor is an error that names it
     * (with both shapes), and nothing is changed when any name is wrong.
     */
    public Block loadParameters(Map<String, TensorData> weights) {
        Map<String, Parameter> own = parameters();
        TreeSet<String> missing = new TreeSet<>(own.keySet());
        missing.removeAll(weights.keySet());
        TreeSet<String> unexpected = new TreeSet<>(weights.keySet());
        unexpected.removeAll(own.keySet());
        if (!missing.isEmpty() || !unexpected.isEmpty()) {
            StringBuilder sb = new StringBuilder("Weights do not match the model's parameters:");
            for (String name : missing) {
                long[] shape = own.get(name).shape();
                sb.append(String.format("%n  missing '%s' (model expects %s)", name, shape == null ? "[deferred]" : Arrays.toString(shape)));
            }
            for (String name : unexpected) {
                sb.append(String.format("%n  unexpected '%s' %s", name, Arrays.toString(weights.get(name).shape())));
            }
            throw new KilnException(ErrorCode.PARAMETER_MISMATCH, sb.toString());
        }
        for (Map.Entry<String, Parameter> e : own.entrySet()) {
            e.getValue().set(weights.get(e.getKey()));
        }
        compiled.clear();
        return this;
    }

    /** The kind of block in messages; the class name unless overridden. */
    protected String kind() {
        return getClass().getSimpleName();
    }

    /** {@code Dense '0'}, or {@code Sequential (root)}. */
    public String describe() {
        String p = path();
        return p.isEmpty() ? kind() + " (root)" : kind() + " '" + p + "'";
    }

    /** Fails with a message naming this block when an input's shape is wrong. */
    protected final KilnException inputShapeError(String expected, Shape actual) {
        return KilnException.of(ErrorCode.SHAPE_MISMATCH, "%s expects input %s but got %s", describe(), expected, actual);
    }
}
