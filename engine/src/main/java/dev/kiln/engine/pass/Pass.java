package dev.kiln.engine.pass;

import dev.kiln.engine.ir.Graph;

/** A graph-to-graph transformation. Pure: it never mutates its input and returns the same instance when nothing changes. */
public interface Pass {
    String name();

    Graph apply(Graph graph);
}
