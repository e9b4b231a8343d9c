package dev.kiln.engine.ops;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;

import java.util.Locale;

/** Pointwise activations: shared by the unary ops and by the fused dense epilogue. */
public enum Activation {
    NONE {
        @Override
        public float apply(float x) {
            return x;
        }
    },
    RELU {
        @Override
        public float apply(float x) {
            // Propagates NaN like PyTorch (Math.max(NaN, 0) is NaN), and is branch-free: a compare-and-select
            // mispredicts on half the elements of real activations.
            return Math.max(x, 0f);
        }
    },
    SIGMOID {
        @Override
        public float apply(float x) {
            return (float) (1.0 / (1.0 + Math.exp(-x)));
        }
    },
    TANH {
        @Override
        public float apply(float x) {
            return (float) Math.tanh(x);
        }
    },
    GELU {
        @Override
        public float apply(float x) {
            // Exact GELU (PyTorch's default): x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)).
            return (float) (0.5 * x * (1.0 + MathFunctions.erf(x * 0.7071067811865476)));
        }
    };

    public abstract float apply(float x);

    /** The op name of the unary op that applies this activation alone (relu, sigmoid, ...). */
    public String opName() {
        return name().toLowerCase(Locale.ROOT);
    }

    public static Activation fromName(String name) {
        for (Activation a : values()) {
            if (a.opName().equals(name)) {
                return a;
            }
        }
        throw KilnException.of(ErrorCode.UNSUPPORTED_OP, "Unknown activation '%s'; supported: none, relu, sigmoid, tanh, gelu", name);
    }

    /** The activation whose unary op is {@code op}, or null. */
    public static Activation forOp(String op) {
        for (Activation a : values()) {
            if (a != NONE && a.opName().equals(op)) {
                return a;
            }
        }
        return null;
    }
}
