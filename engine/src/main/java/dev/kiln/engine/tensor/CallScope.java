package dev.kiln.engine.tensor;

import java.util.ArrayDeque;
import java.util.Deque;

/**
 * The blocks being run on this thread, innermost last, so that errors raised deep inside an op can name the block
 * ({@code Dense '0'}) whose code called it, and traced nodes can record where they came from. Blocks push on entry
 * and pop on exit.
 */
public final class CallScope {
    private record Frame(String kind, String path) { }

    private static final ThreadLocal<Deque<Frame>> STACK = ThreadLocal.withInitial(ArrayDeque::new);

    private CallScope() {
    }

    /** Enters a block: {@code kind} is its class name, {@code path} its place in the model ("" for the root). */
    public static void push(String kind, String path) {
        STACK.get().addLast(new Frame(kind, path));
    }

    public static void pop() {
        STACK.get().removeLast();
    }

    /** The innermost block for messages, e.g. {@code Dense '0'} or {@code Sequential (root)}; null outside blocks. */
    public static String current() {
        Frame f = STACK.get().peekLast();
        if (f == null) {
            return null;
        }
        return f.path().isEmpty() ? f.kind() + " (root)" : f.kind() + " '" + f.path() + "'";
    }

    /** The innermost block's path ("0", "encoder.attn"), "" for the root; null outside blocks. */
    public static String currentPath() {
        Frame f = STACK.get().peekLast();
        return f == null ? null : f.path();
    }

    /** Prefixes {@code message} with the innermost block when there is one. */
    public static String locate(String message) {
        String block = current();
        return block == null ? message : "In " + block + ": " + message;
    }
}
