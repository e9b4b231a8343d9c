package dev.kiln.engine.plan;

import dev.kiln.engine.ir.Value;

import java.util.Map;

/**
 * Where every run-time value lives inside one arena, for a given batch capacity: element offsets (aligned to 64
 * bytes), the arena size, and the statistics that show what planning saved. Static values (constants, parameters)
 * are not in the arena; values that alias another (reshape, identity) share its storage.
 *
 * @param offsets        element offset of each arena value (aliases included)
 * @param roots          for each arena value, the value whose storage it uses (itself, or what it is a view of)
 * @param staticAliases  run-time values that are views of a static value, mapped to that static value
 * @param arenaElements  floats the arena needs
 * @param peakBytes      bytes of the arena (the planned peak)
 * @param naiveBytes     bytes if every intermediate had its own buffer (the eager baseline)
 * @param capacity       the batch size the plan was made for
 */
public record MemoryPlan(Map<Value, Integer> offsets, Map<Value, Value> roots, Map<Value, Value> staticAliases, long arenaElements,
                         long peakBytes, long naiveBytes, long capacity) {
    public int offset(Value value) {
        Integer offset = offsets.get(value);
        if (offset == null) {
            throw new IllegalArgumentException("Value has no arena offset: " + value);
        }
        return offset;
    }

    @Override
    public String toString() {
        return String.format("memory plan at batch %d: peak %,d bytes vs %,d bytes unplanned (%.1f%%)",
                capacity, peakBytes, naiveBytes, naiveBytes == 0 ? 100.0 : 100.0 * peakBytes / naiveBytes);
    }
}
