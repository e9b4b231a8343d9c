package dev.kiln.engine.backend.cuda;

import dev.kiln.engine.tensor.Shape;

/**
 * A size known at compile time up to the batch: {@code base + perBatch * batch}. Every size a GPU step needs (elements,
 * rows, matrices) is one, so steps compute their launch sizes from the batch with two multiplications and no lookup.
 */
record Lin(long base, long perBatch) {
    static Lin fixed(long value) {
        return new Lin(value, 0);
    }

    long at(long batch) {
        return base + perBatch * batch;
    }

    /** The element count of {@code shape} (linear in the batch: Kiln shapes have at most one symbolic axis). */
    static Lin elements(Shape shape) {
        return shape.isConcrete() ? fixed(shape.elementCount()) : new Lin(0, shape.elementCount(1));
    }

    /** This size divided by a fixed {@code divisor} that divides it for every batch. */
    Lin divide(long divisor) {
        return new Lin(base / divisor, perBatch / divisor);
    }
}
