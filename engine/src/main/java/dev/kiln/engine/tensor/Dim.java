package dev.kiln.engine.tensor;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;

import java.util.Objects;

/**
 * One dimension of a {@link Shape}: either a concrete size, or a symbol (the batch) times a constant factor, so that
 * reshapes such as {@code [batch, 16, 32] -> [batch*16, 32]} stay exact while the batch is unknown.
 */
public final class Dim {
    private final String symbol;
    private final long factor;

    private Dim(String symbol, long factor) {
        this.symbol = symbol;
        this.factor = factor;
    }

    public static Dim of(long size) {
        if (size < 0) {
            throw KilnException.of(ErrorCode.INVALID_ARGUMENT, "A dimension cannot be negative: %d", size);
        }
        return new Dim(null, size);
    }

    public static Dim symbol(String name) {
        Objects.requireNonNull(name, "name is null");
        return new Dim(name, 1);
    }

    public boolean isConcrete() {
        return symbol == null;
    }

    public boolean isSymbolic() {
        return symbol != null;
    }

    /** The symbol's name, or null for a concrete dimension. */
    public String symbolName() {
        return symbol;
    }

    /** The size of a concrete dimension, or the multiplier of the symbol. */
    public long factor() {
        return factor;
    }

    /** The concrete size; fails for a symbolic dimension. */
    public long size() {
        if (symbol != null) {
            throw KilnException.of(ErrorCode.SHAPE_MISMATCH, "Dimension %s is symbolic and has no concrete size", this);
        }
        return factor;
    }

    /** The size once the symbol is bound to {@code symbolValue}. */
    public long resolve(long symbolValue) {
        return symbol == null ? factor : factor * symbolValue;
    }

    public Dim times(long k) {
        return new Dim(symbol, factor * k);
    }

    /** This dimension divided by a concrete {@code k}; fails when it does not divide exactly. */
    public Dim dividedBy(long k) {
        if (k <= 0 || factor % k != 0) {
            throw KilnException.of(ErrorCode.SHAPE_MISMATCH, "Dimension %s is not divisible by %d", this, k);
        }
        return new Dim(symbol, factor / k);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Dim other && factor == other.factor && Objects.equals(symbol, other.symbol);
    }

    @Override
    public int hashCode() {
        return Objects.hash(symbol, factor);
    }

    @Override
    public String toString() {
        if (symbol == null) {
            return Long.toString(factor);
        }
        return factor == 1 ? symbol : symbol + "*" + factor;
    }

    /** Parses the text form written by {@link #toString()}: {@code 512}, {@code batch}, {@code batch*16}. */
    public static Dim parse(String text) {
        String t = text.trim();
        int star = t.indexOf('*');
        try {
            if (star >= 0) {
                String symbol = t.substring(0, star);
                long factor = Long.parseLong(t.substring(star + 1));
                if (!isIdentifier(symbol) || factor <= 0) {
                    throw KilnException.of(ErrorCode.INVALID_ARGUMENT, "Cannot parse dimension '%s': expected SYMBOL*POSITIVE_FACTOR", text);
                }
                return new Dim(symbol, factor);
            }
            if (!t.isEmpty() && (Character.isDigit(t.charAt(0)))) {
                return of(Long.parseLong(t));
            }
        } catch (NumberFormatException e) {
            throw KilnException.of(ErrorCode.INVALID_ARGUMENT, "Cannot parse dimension '%s'", text);
        }
        if (!isIdentifier(t)) {
            throw KilnException.of(ErrorCode.INVALID_ARGUMENT, "Cannot parse dimension '%s': expected a size or a symbol name", text);
        }
        return symbol(t);
    }

    private static boolean isIdentifier(String s) {
        if (s.isEmpty() || s.length() > 64 || !Character.isLetter(s.charAt(0))) {
            return false;
        }
        for (int i = 1; i < s.length(); i++) {
            char c = s.charAt(i);
            if (!Character.isLetterOrDigit(c) && c != '_') {
                return false;
            }
        }
        return true;
    }
}
