package dev.kiln.engine.tensor;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;

/** Element types. The IR carries any of them; kernels exist for {@link #FLOAT32} (others are refused by name). */
public enum DType {
    FLOAT32("float32", "F32", 4),
    FLOAT64("float64", "F64", 8),
    INT32("int32", "I32", 4),
    INT64("int64", "I64", 8),
    BOOL("bool", "BOOL", 1);

    private final String displayName;
    private final String safetensorsName;
    private final int byteSize;

    DType(String displayName, String safetensorsName, int byteSize) {
        this.displayName = displayName;
        this.safetensorsName = safetensorsName;
        this.byteSize = byteSize;
    }

    public int byteSize() {
        return byteSize;
    }

    /** The dtype code used by the safetensors format ("F32", "I64", ...). */
    public String safetensorsName() {
        return safetensorsName;
    }

    public static DType fromSafetensorsName(String name) {
        for (DType type : values()) {
            if (type.safetensorsName.equals(name)) {
                return type;
            }
        }
        throw KilnException.of(ErrorCode.UNSUPPORTED_OP, "Unsupported safetensors dtype '%s'; supported: F32, F64, I32, I64, BOOL", name);
    }

    public static DType fromName(String name) {
        for (DType type : values()) {
            if (type.displayName.equals(name)) {
                return type;
            }
        }
        throw KilnException.of(ErrorCode.UNSUPPORTED_OP, "Unknown dtype '%s'", name);
    }

    @Override
    public String toString() {
        return displayName;
    }
}
