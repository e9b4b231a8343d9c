package dev.kiln.format.kiln;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;
import dev.kiln.engine.ir.Attributes;
import dev.kiln.engine.ir.Graph;
import dev.kiln.engine.ir.GraphBuilder;
import dev.kiln.engine.ir.Node;
import dev.kiln.engine.ir.TensorType;
import dev.kiln.engine.ir.Value;
import dev.kiln.engine.ops.OpRegistry;
import dev.kiln.engine.tensor.DType;
import dev.kiln.engine.tensor.Dim;
import dev.kiln.engine.tensor.Shape;
import dev.kiln.engine.tensor.TensorData;

import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Graph IR to and from {@code graph.json}. Constants' data go to the weights file under {@code @constant/N}; the JSON
 * references them by that name. Attributes are typed objects ({@code {"int": 3}}, {@code {"ints": [0, 1]}},
 * {@code {"float": 0.5}}, {@code {"floats": [...]}}, {@code {"string": "relu"}}, {@code {"tensor": "@constant/0"}}),
 * so a reader in any language needs no schema guesses. Documented in docs/FORMAT.md.
 */
public final class GraphCodec {
    static final String CONSTANT_PREFIX = "@constant/";
    private static final ObjectMapper JSON = new ObjectMapper();

    private GraphCodec() {
    }

    /** Encodes {@code graph}; adds its parameters and constants to {@code tensors} (the weights file's contents). */
    public static ObjectNode encode(Graph graph, Map<String, TensorData> tensors) {
        Map<Value, Integer> ids = new IdentityHashMap<>();
        ObjectNode root = JSON.createObjectNode();
        ArrayNode values = root.putArray("values");
        ArrayNode inputs = root.putArray("inputs");
        for (Value v : graph.inputs()) {
            inputs.addObject().put("name", v.name()).put("value", define(v, ids, values));
        }
        ArrayNode nodes = root.putArray("nodes");
        int constants = 0;
        for (Node node : graph.nodes()) {
            ObjectNode n = nodes.addObject();
            n.put("op", node.op());
            if (node.name() != null) {
                n.put("name", node.name());
            }
            ArrayNode in = n.putArray("inputs");
            for (Value v : node.inputs()) {
                in.add(ids.get(v));
            }
            ArrayNode out = n.putArray("outputs");
            for (Value v : node.outputs()) {
                out.add(define(v, ids, values));
            }
            ObjectNode attrs = n.putObject("attributes");
            for (Map.Entry<String, Object> e : node.attributes().asMap().entrySet()) {
                ObjectNode a = attrs.putObject(e.getKey());
                Object v = e.getValue();
                if (v instanceof Long l) {
                    a.put("int", l);
                } else if (v instanceof Double d) {
                    a.put("float", d);
                } else if (v instanceof String s) {
                    a.put("string", s);
                } else if (v instanceof long[] longs) {
                    ArrayNode arr = a.putArray("ints");
                    for (long l : longs) {
                        arr.add(l);
                    }
                } else if (v instanceof double[] doubles) {
                    ArrayNode arr = a.putArray("floats");
                    for (double d : doubles) {
                        arr.add(d);
                    }
                } else if (v instanceof TensorData t) {
                    String name = CONSTANT_PREFIX + constants++;
                    tensors.put(name, t);
                    a.put("tensor", name);
                } else {
                    throw new IllegalStateException("unencodable attribute " + e.getKey());
                }
            }
        }
        ArrayNode outputs = root.putArray("outputs");
        for (int i = 0; i < graph.outputs().size(); i++) {
            outputs.addObject().put("name", graph.outputNames().get(i)).put("value", ids.get(graph.outputs().get(i)));
        }
        tensors.putAll(graph.parameters());
        return root;
    }

    private static int define(Value v, Map<Value, Integer> ids, ArrayNode values) {
        int id = ids.size();
        ids.put(v, id);
        ObjectNode entry = values.addObject();
        entry.put("id", id);
        entry.put("dtype", v.type().dtype().toString());
        ArrayNode shape = entry.putArray("shape");
        for (Dim d : v.type().shape().dims()) {
            if (d.isConcrete()) {
                shape.add(d.size());
            } else {
                shape.add(d.toString());
            }
        }
        return id;
    }

    /**
     * Decodes a graph. Every op must be known to this reader (all unknown ones are listed in one error, naming their
     * nodes), every reference must resolve, and tensors must exist in {@code tensors}.
     */
    public static Graph decode(JsonNode root, Map<String, TensorData> tensors, String source) {
        List<String> unknown = new ArrayList<>();
        List<String> unknownAttributes = new ArrayList<>();
        for (JsonNode n : root.path("nodes")) {
            String op = n.path("op").asText();
            if (!OpRegistry.contains(op)) {
                unknown.add(String.format("'%s' at node '%s'", op, n.path("name").asText("?")));
                continue;
            }
            // An attribute this reader does not know would be silently ignored and change results: refuse it by name.
            java.util.Set<String> known = new java.util.HashSet<>();
            OpRegistry.get(op).attributes().forEach(a -> known.add(a.name()));
            n.path("attributes").fieldNames().forEachRemaining(a -> {
                if (!known.contains(a)) {
                    unknownAttributes.add(String.format("'%s' of %s at node '%s'", a, op, n.path("name").asText("?")));
                }
            });
        }
        if (!unknown.isEmpty()) {
            throw KilnException.of(ErrorCode.UNSUPPORTED_OP, "%s uses ops this reader does not know: %s", source, String.join(", ", unknown));
        }
        if (!unknownAttributes.isEmpty()) {
            throw KilnException.of(ErrorCode.UNSUPPORTED_OP, "%s uses op attributes this reader does not know (written by a newer Kiln?): %s",
                    source, String.join(", ", unknownAttributes));
        }
        Map<Integer, TensorType> types = new LinkedHashMap<>();
        for (JsonNode v : require(root, "values", source)) {
            int id = types.size();
            if (!v.path("id").isInt() || v.path("id").asInt() != id) {
                throw corrupt(source, "value ids must count up from 0; entry %d has id %s", id, v.path("id"));
            }
            types.put(id, type(v, id, source));
        }
        Map<Integer, Value> values = new LinkedHashMap<>();
        List<Value> inputs = new ArrayList<>();
        for (JsonNode in : require(root, "inputs", source)) {
            int id = in.path("value").asInt(-1);
            Value v = new Value(type(types, id, source), in.path("name").asText());
            define(values, id, v, source);
            inputs.add(v);
        }
        List<Node> nodes = new ArrayList<>();
        Map<String, TensorData> parameters = new LinkedHashMap<>();
        for (JsonNode n : require(root, "nodes", source)) {
            String op = n.path("op").asText();
            List<Value> in = new ArrayList<>();
            for (JsonNode id : n.path("inputs")) {
                Value v = values.get(id.asInt(-1));
                if (v == null) {
                    throw corrupt(source, "node '%s' (%s) reads value %d before it is defined", n.path("name").asText("?"), op, id.asInt());
                }
                in.add(v);
            }
            Attributes attributes = Attributes.EMPTY;
            Iterator<Map.Entry<String, JsonNode>> fields = n.path("attributes").fields();
            while (fields.hasNext()) {
                Map.Entry<String, JsonNode> f = fields.next();
                attributes = attributes.with(f.getKey(), attribute(f.getValue(), tensors, source));
            }
            String name = n.has("name") ? n.get("name").asText() : null;
            List<Value> out = new ArrayList<>();
            for (JsonNode id : n.path("outputs")) {
                Value v = new Value(type(types, id.asInt(-1), source), op.equals(OpRegistry.PARAMETER) ? attributes.getString("name") : null);
                define(values, id.asInt(-1), v, source);
                out.add(v);
            }
            if (op.equals(OpRegistry.PARAMETER)) {
                String param = attributes.getString("name");
                TensorData data = tensors.get(param);
                if (data == null) {
                    throw corrupt(source, "parameter '%s' is missing from the weights", param);
                }
                parameters.put(param, data);
            }
            nodes.add(new Node(op, attributes, in, out, name));
        }
        List<Value> outputs = new ArrayList<>();
        List<String> outputNames = new ArrayList<>();
        for (JsonNode o : require(root, "outputs", source)) {
            Value v = o.path("value").isInt() ? values.get(o.path("value").asInt()) : null;
            if (v == null) {
                throw corrupt(source, "output '%s' refers to undefined value %d", o.path("name").asText(), o.path("value").asInt());
            }
            outputs.add(v);
            outputNames.add(o.path("name").asText());
        }
        for (String name : tensors.keySet()) {
            if (!name.startsWith(CONSTANT_PREFIX) && !parameters.containsKey(name)) {
                throw corrupt(source, "the weights hold tensor '%s' that no parameter node uses", name);
            }
        }
        return GraphBuilder.of(inputs, nodes, outputs, outputNames, parameters);
    }

    /** The largest element count of one value (per batch row for symbolic shapes) a graph may declare. */
    static final long MAX_VALUE_ELEMENTS = Integer.MAX_VALUE;

    private static TensorType type(JsonNode v, int id, String source) {
        DType dtype;
        try {
            dtype = DType.fromName(v.path("dtype").asText());
        } catch (KilnException e) {
            throw corrupt(source, "value %d has unknown dtype '%s'", id, v.path("dtype").asText());
        }
        if (!v.path("shape").isArray()) {
            throw corrupt(source, "value %d has no shape array", id);
        }
        List<Dim> dims = new ArrayList<>();
        long elements = 1;
        for (JsonNode d : v.path("shape")) {
            Dim dim;
            if (d.isIntegralNumber() && d.canConvertToLong()) {
                dim = Dim.of(d.asLong());
            } else if (d.isTextual()) {
                dim = Dim.parse(d.asText());
            } else {
                throw corrupt(source, "value %d has an invalid dimension %s", id, d);
            }
            elements *= Math.max(1, dim.factor());
            if (dim.factor() > MAX_VALUE_ELEMENTS || elements > MAX_VALUE_ELEMENTS) {
                throw corrupt(source, "value %d has an impossibly large shape %s", id, v.path("shape"));
            }
            dims.add(dim);
        }
        return new TensorType(dtype, Shape.of(dims));
    }

    private static void define(Map<Integer, Value> values, int id, Value v, String source) {
        if (values.putIfAbsent(id, v) != null) {
            throw corrupt(source, "value %d is defined twice", id);
        }
    }

    private static JsonNode require(JsonNode root, String field, String source) {
        JsonNode n = root.get(field);
        if (n == null || !n.isArray()) {
            throw corrupt(source, "graph.json has no '%s' array", field);
        }
        return n;
    }

    private static TensorType type(Map<Integer, TensorType> types, int id, String source) {
        TensorType t = types.get(id);
        if (t == null) {
            throw corrupt(source, "value %d has no entry in 'values'", id);
        }
        return t;
    }

    private static Object attribute(JsonNode a, Map<String, TensorData> tensors, String source) {
        if (a.has("int")) {
            return a.get("int").asLong();
        }
        if (a.has("float")) {
            return a.get("float").asDouble();
        }
        if (a.has("string")) {
            return a.get("string").asText();
        }
        if (a.has("ints")) {
            long[] out = new long[a.get("ints").size()];
            for (int i = 0; i < out.length; i++) {
                out[i] = a.get("ints").get(i).asLong();
            }
            return out;
        }
        if (a.has("floats")) {
            double[] out = new double[a.get("floats").size()];
            for (int i = 0; i < out.length; i++) {
                out[i] = a.get("floats").get(i).asDouble();
            }
            return out;
        }
        if (a.has("tensor")) {
            TensorData t = tensors.get(a.get("tensor").asText());
            if (t == null) {
                throw corrupt(source, "constant '%s' is missing from the weights", a.get("tensor").asText());
            }
            return t;
        }
        throw corrupt(source, "attribute %s has no known type (int, float, string, ints, floats, tensor)", a);
    }

    private static KilnException corrupt(String source, String format, Object... args) {
        return new KilnException(ErrorCode.CORRUPT_MODEL, "Corrupt model " + source + ": " + String.format(format, args));
    }
}
