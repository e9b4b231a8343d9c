package dev.kiln.engine;

import static java.util.Objects.requireNonNull;

/**
 * The one exception type Kiln throws for failures a user can act on. Every message says what failed, where (block,
 * node, column, file) and, where it applies, expected versus actual.
 */
public class KilnException extends RuntimeException {
    private final ErrorCode code;

    public KilnException(ErrorCode code, String message) {
        super(requireNonNull(message, "message is null"));
        this.code = requireNonNull(code, "code is null");
    }

    public KilnException(ErrorCode code, String message, Throwable cause) {
        super(requireNonNull(message, "message is null"), cause);
        this.code = requireNonNull(code, "code is null");
    }

    public static KilnException of(ErrorCode code, String format, Object... args) {
        return new KilnException(code, String.format(format, args));
    }

    public ErrorCode code() {
        return code;
    }
}
