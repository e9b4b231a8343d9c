package dev.kiln.engine.ir;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;
import dev.kiln.engine.tensor.TensorData;

import java.util.Arrays;
import java.util.Collections;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;

/**
 * Immutable, sorted op attributes. Values are {@code Long}, {@code Double}, {@code String}, {@code long[]},
 * {@code double[]} or {@link TensorData} (constants). Equality is by content, which CSE relies on.
 */
public final class Attributes {
    public static final Attributes EMPTY = new Attributes(new TreeMap<>());

    private final TreeMap<String, Object> values;

    private Attributes(TreeMap<String, Object> values) {
        this.values = values;
    }

    public static Attributes of(Object... keyValues) {
        if (keyValues.length % 2 != 0) {
            throw new IllegalArgumentException("Attributes.of needs key/value pairs");
        }
        TreeMap<String, Object> map = new TreeMap<>();
        for (int i = 0; i < keyValues.length; i += 2) {
            map.put((String) keyValues[i], normalize(keyValues[i + 1]));
        }
        return new Attributes(map);
    }

    private static Object normalize(Object v) {
        Objects.requireNonNull(v, "attribute value is null");
        if (v instanceof Integer i) {
            return (long) i;
        }
        if (v instanceof Float f) {
            return (double) f;
        }
        if (v instanceof int[] ints) {
            return Arrays.stream(ints).asLongStream().toArray();
        }
        if (v instanceof Long || v instanceof Double || v instanceof String || v instanceof long[]
                || v instanceof double[] || v instanceof TensorData) {
            return v;
        }
        throw new IllegalArgumentException("Unsupported attribute value type: " + v.getClass().getName());
    }

    public Attributes with(String key, Object value) {
        TreeMap<String, Object> map = new TreeMap<>(values);
        map.put(key, normalize(value));
        return new Attributes(map);
    }

    public boolean has(String key) {
        return values.containsKey(key);
    }

    public Map<String, Object> asMap() {
        return Collections.unmodifiableMap(values);
    }

    public long getLong(String key) {
        return get(key, Long.class);
    }

    public long getLong(String key, long defaultValue) {
        return has(key) ? getLong(key) : defaultValue;
    }

    public double getDouble(String key) {
        return get(key, Double.class);
    }

    public double getDouble(String key, double defaultValue) {
        return has(key) ? getDouble(key) : defaultValue;
    }

    public String getString(String key) {
        return get(key, String.class);
    }

    public String getString(String key, String defaultValue) {
        return has(key) ? getString(key) : defaultValue;
    }

    public long[] getLongs(String key) {
        return get(key, long[].class).clone();
    }

    public TensorData getTensor(String key) {
        return get(key, TensorData.class);
    }

    private <T> T get(String key, Class<T> type) {
        Object v = values.get(key);
        if (v == null) {
            throw KilnException.of(ErrorCode.INVALID_GRAPH, "Missing attribute '%s'", key);
        }
        if (!type.isInstance(v)) {
            throw KilnException.of(ErrorCode.INVALID_GRAPH, "Attribute '%s' is a %s, expected %s",
                    key, v.getClass().getSimpleName(), type.getSimpleName());
        }
        return type.cast(v);
    }

    @Override
    public boolean equals(Object o) {
        if (!(o instanceof Attributes other) || !values.keySet().equals(other.values.keySet())) {
            return false;
        }
        for (Map.Entry<String, Object> e : values.entrySet()) {
            if (!valueEquals(e.getValue(), other.values.get(e.getKey()))) {
                return false;
            }
        }
        return true;
    }

    private static boolean valueEquals(Object a, Object b) {
        if (a instanceof long[] x && b instanceof long[] y) {
            return Arrays.equals(x, y);
        }
        if (a instanceof double[] x && b instanceof double[] y) {
            return Arrays.equals(x, y);
        }
        if (a instanceof TensorData x && b instanceof TensorData y) {
            return x == y || (x.dtype() == y.dtype() && Arrays.equals(x.shape(), y.shape()) && x.bytes().equals(y.bytes()));
        }
        return a.equals(b);
    }

    @Override
    public int hashCode() {
        int h = 1;
        for (Map.Entry<String, Object> e : values.entrySet()) {
            Object v = e.getValue();
            int vh;
            if (v instanceof long[] x) {
                vh = Arrays.hashCode(x);
            } else if (v instanceof double[] x) {
                vh = Arrays.hashCode(x);
            } else if (v instanceof TensorData t) {
                vh = Arrays.hashCode(t.shape()) * 31 + t.bytes().hashCode();
            } else {
                vh = v.hashCode();
            }
            h = h * 31 + e.getKey().hashCode() * 17 + vh;
        }
        return h;
    }

    /** Stable text, sorted by key: {@code {activation=relu, axis=-1}}; small constants print their values. */
    @Override
    public String toString() {
        if (values.isEmpty()) {
            return "";
        }
        StringBuilder sb = new StringBuilder("{");
        boolean first = true;
        for (Map.Entry<String, Object> e : values.entrySet()) {
            if (!first) {
                sb.append(", ");
            }
            first = false;
            sb.append(e.getKey()).append('=').append(format(e.getValue()));
        }
        return sb.append('}').toString();
    }

    static String format(Object v) {
        if (v instanceof long[] x) {
            return Arrays.toString(x);
        }
        if (v instanceof double[] x) {
            return Arrays.toString(x);
        }
        if (v instanceof TensorData t) {
            if (t.elementCount() <= 8 && t.dtype() == dev.kiln.engine.tensor.DType.FLOAT32) {
                return t + " " + Arrays.toString(t.toFloatArray());
            }
            return t.toString();
        }
        return String.valueOf(v);
    }
}
