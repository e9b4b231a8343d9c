package dev.kiln.engine.ops;

import dev.kiln.engine.tensor.Dim;
import dev.kiln.engine.tensor.Shape;

/** NumPy/ONNX multidirectional broadcasting over possibly symbolic shapes. */
final class Broadcasting {
    private Broadcasting() {
    }

    static Shape broadcast(String op, Shape a, Shape b) {
        int rank = Math.max(a.rank(), b.rank());
        Dim[] out = new Dim[rank];
        for (int i = 0; i < rank; i++) {
            int ia = a.rank() - rank + i;
            int ib = b.rank() - rank + i;
            Dim da = ia >= 0 ? a.dim(ia) : Dim.of(1);
            Dim db = ib >= 0 ? b.dim(ib) : Dim.of(1);
            if (da.equals(db)) {
                out[i] = da;
            } else if (da.isConcrete() && da.size() == 1) {
                out[i] = db;
            } else if (db.isConcrete() && db.size() == 1) {
                out[i] = da;
            } else {
                throw BaseOp.shapeError("%s cannot broadcast %s with %s (dimension %d: %s vs %s)", op, a, b, i, da, db);
            }
        }
        return Shape.of(out);
    }

    /**
     * Strides of {@code input} read as if broadcast to {@code outDims} (0 where broadcast), right-aligned.
     * Writes into {@code strides} (length = outDims.length) without allocating.
     */
    static void broadcastStrides(Shape input, long batch, long[] outDims, int[] strides) {
        int rank = outDims.length;
        int offset = rank - input.rank();
        int stride = 1;
        for (int i = rank - 1; i >= 0; i--) {
            int ii = i - offset;
            long size = ii >= 0 ? input.size(ii, batch) : 1;
            strides[i] = size == 1 && outDims[i] != 1 ? 0 : (ii >= 0 ? stride : 0);
            stride *= (int) size;
        }
    }
}
