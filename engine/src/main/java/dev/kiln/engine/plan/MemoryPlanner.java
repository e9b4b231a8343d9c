package dev.kiln.engine.plan;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;
import dev.kiln.engine.ir.Graph;
import dev.kiln.engine.ir.Node;
import dev.kiln.engine.ir.Value;
import dev.kiln.engine.ops.OpDef;
import dev.kiln.engine.ops.OpRegistry;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * Liveness-based buffer assignment, the seed's "free memory when a value is dead". Values are grouped into storage
 * (a value plus its aliases); each storage lives from the step that defines it to the last step that reads it or any
 * alias (graph inputs from the start, graph outputs to the end). Storages are placed largest first at the lowest
 * offset that overlaps no storage alive at the same time (greedy-by-size, as in TFLite's planner). An analysis only:
 * it never rewrites the graph.
 */
public final class MemoryPlanner {
    private static final int ALIGN_ELEMENTS = 16;
    /** A direct buffer view covers at most 2 GiB. */
    public static final long MAX_ARENA_ELEMENTS = (Integer.MAX_VALUE - 64) / 4;

    private MemoryPlanner() {
    }

    private static final class Storage {
        final Value root;
        final long elements;
        int first;
        int last;
        long offset = -1;

        Storage(Value root, long elements, int first) {
            this.root = root;
            this.elements = elements;
            this.first = first;
            this.last = first;
        }
    }

    public static MemoryPlan plan(Graph graph, long capacity) {
        return plan(graph, capacity, Map.of());
    }

    /**
     * As {@link #plan(Graph, long)}, with some values kept alive (their memory not reused) until the given node has
     * run: a backend kernel that runs several nodes at once, chunk by chunk, still reads its first input while it
     * writes its last output (the CPU backend's oneDNN layer chains).
     */
    public static MemoryPlan plan(Graph graph, long capacity, Map<Value, Node> liveUntil) {
        Map<Value, Storage> storageOf = new IdentityHashMap<>();
        Map<Value, Value> staticRoot = new IdentityHashMap<>();
        List<Storage> storages = new ArrayList<>();
        int end = graph.nodes().size();
        for (Value in : graph.inputs()) {
            Storage s = new Storage(in, elements(in, capacity), -1);
            storages.add(s);
            storageOf.put(in, s);
        }
        List<Node> nodes = graph.nodes();
        for (int step = 0; step < nodes.size(); step++) {
            Node node = nodes.get(step);
            String op = node.op();
            if (op.equals(OpRegistry.CONSTANT) || op.equals(OpRegistry.PARAMETER)) {
                staticRoot.put(node.output(), node.output());
                continue;
            }
            for (Value in : node.inputs()) {
                Storage s = storageOf.get(in);
                if (s != null) {
                    s.last = Math.max(s.last, step);
                }
            }
            OpDef def = OpRegistry.get(op);
            if (def.aliasesInput()) {
                Value in = node.input(0);
                if (staticRoot.containsKey(in)) {
                    staticRoot.put(node.output(), staticRoot.get(in));
                } else {
                    storageOf.put(node.output(), storageOf.get(in));
                }
                continue;
            }
            for (Value out : node.outputs()) {
                Storage s = new Storage(out, elements(out, capacity), step);
                storages.add(s);
                storageOf.put(out, s);
            }
        }
        for (Map.Entry<Value, Node> e : liveUntil.entrySet()) {
            Storage s = storageOf.get(e.getKey());
            int step = nodes.indexOf(e.getValue());
            if (s != null && step >= 0) {
                s.last = Math.max(s.last, step);
            }
        }
        for (Value out : graph.outputs()) {
            Storage s = storageOf.get(out);
            if (s != null) {
                s.last = end;
            }
        }
        long naive = 0;
        for (Storage s : storages) {
            naive += s.elements * 4;
        }
        List<Storage> bySize = new ArrayList<>(storages);
        bySize.sort(Comparator.comparingLong((Storage s) -> -s.elements).thenComparingInt(s -> s.first));
        List<Storage> placed = new ArrayList<>();
        long arena = 0;
        for (Storage s : bySize) {
            long offset = 0;
            boolean moved = true;
            while (moved) {
                moved = false;
                for (Storage p : placed) {
                    boolean overlapInTime = s.first <= p.last && p.first <= s.last;
                    boolean overlapInSpace = offset < p.offset + padded(p.elements) && p.offset < offset + padded(s.elements);
                    if (overlapInTime && overlapInSpace) {
                        offset = p.offset + padded(p.elements);
                        moved = true;
                    }
                }
            }
            s.offset = offset;
            placed.add(s);
            arena = Math.max(arena, offset + padded(s.elements));
        }
        if (arena > MAX_ARENA_ELEMENTS) {
            throw KilnException.of(ErrorCode.INVALID_ARGUMENT,
                    "Batch capacity %d needs an arena of %,d floats, over the %,d-float (2 GiB) limit of one buffer; use a smaller batch",
                    capacity, arena, MAX_ARENA_ELEMENTS);
        }
        Map<Value, Integer> offsets = new IdentityHashMap<>();
        Map<Value, Value> roots = new IdentityHashMap<>();
        for (Map.Entry<Value, Storage> e : storageOf.entrySet()) {
            offsets.put(e.getKey(), (int) e.getValue().offset);
            roots.put(e.getKey(), e.getValue().root);
        }
        Map<Value, Value> staticAliases = new IdentityHashMap<>(staticRoot);
        return new MemoryPlan(offsets, roots, staticAliases, arena, arena * 4, naive, capacity);
    }

    private static long elements(Value v, long capacity) {
        return v.type().shape().elementCount(capacity);
    }

    private static long padded(long elements) {
        return Math.max(ALIGN_ELEMENTS, (elements + ALIGN_ELEMENTS - 1) / ALIGN_ELEMENTS * ALIGN_ELEMENTS);
    }
}
