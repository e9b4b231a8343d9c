package dev.kiln.engine.backend.cpu;

import dev.kiln.engine.backend.Kernel;
import dev.kiln.engine.backend.Slot;
import dev.kiln.engine.ir.Node;

/**
 * One node of a CPU schedule: the node, the slots it reads and writes, and the kernel that runs it alone. The executor
 * builds one per compute node; {@link DnnlChainKernel#fuse} then replaces runs of them by chains.
 */
record ScheduledNode(Node node, Slot[] inputs, Slot[] outputs, Kernel kernel) {
}
