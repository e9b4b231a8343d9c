package dev.kiln.engine.backend.cpu;

import dev.kiln.engine.backend.Kernel;
import dev.kiln.engine.backend.Slot;
import dev.kiln.engine.ir.Attributes;
import dev.kiln.engine.ops.MaxPool2dOp;
import dev.kiln.engine.ops.OpRegistry;

import java.nio.FloatBuffer;

/**
 * max_pool2d and avg_pool2d over heap copies of one plane at a time: the plane comes in with one bulk read from the
 * (direct) input buffer, the windows run over plain arrays, the output plane goes out with one bulk write. The
 * reference kernels read every element through the buffer, which measured half of the CNN's time. Same results as
 * the reference kernels (max propagates NaN and ranks -0 below +0 as Math.max does; average divides by the window or by the positions inside it).
 */
final class PoolKernel implements Kernel {
    private final Slot x;
    private final Slot out;
    private final MaxPool2dOp.Geometry g;
    private final boolean max;
    private final boolean countPads;
    private final float[] plane;
    private final float[] result;
    private final float[] rowPairs;

    PoolKernel(String op, Slot x, Slot out, Attributes attributes) {
        this.x = x;
        this.out = out;
        this.g = MaxPool2dOp.geometry(op, x.type().shape(), attributes);
        this.max = op.equals(OpRegistry.MAX_POOL2D);
        this.countPads = attributes.getLong("count_include_pad", 0) != 0;
        this.plane = new float[g.h() * g.w()];
        this.result = new float[g.oh() * g.ow()];
        this.rowPairs = new float[2 * g.ow()];
    }

    @Override
    public void run(long batch) {
        int planes = (int) x.size(0, batch) * g.c();
        FloatBuffer xb = x.buffer();
        FloatBuffer ob = out.buffer();
        for (int p = 0; p < planes; p++) {
            xb.get(x.offset() + p * plane.length, plane, 0, plane.length);
            if (max) {
                maxPlane();
            } else {
                averagePlane();
            }
            ob.put(out.offset() + p * result.length, result, 0, result.length);
        }
    }

    /**
     * Floats ordered as ints: {@code key(a) < key(b)} exactly when {@code a < b} (with -0 below +0), so the window's
     * maximum is an integer max, which compiles to a conditional move. Float compares (and Math.max, whose intrinsic
     * the JIT drops when its profile looks predictable) compiled to branches and mispredicted on relu outputs: 3x slower.
     */
    private static int key(float v) {
        int bits = Float.floatToRawIntBits(v);
        return bits ^ ((bits >> 31) & 0x7fffffff);
    }

    private void maxPlane() {
        // Every window inside the plane: no padding on any side (bottom and right padding can add a last row or column).
        if (g.kh() == 2 && g.kw() == 2 && g.sh() == 2 && g.sw() == 2 && g.pt() == 0 && g.pl() == 0 && 2 * g.oh() <= g.h() && 2 * g.ow() <= g.w()) {
            maxPlane2x2();
            return;
        }
        int w = g.w();
        int kw = g.kw();
        int lowest = key(Float.NEGATIVE_INFINITY);
        for (int oy = 0; oy < g.oh(); oy++) {
            int y0 = oy * g.sh() - g.pt();
            int yFrom = Math.max(0, y0);
            int yTo = Math.min(g.h(), y0 + g.kh());
            for (int ox = 0; ox < g.ow(); ox++) {
                int x0 = ox * g.sw() - g.pl();
                int xFrom = Math.max(0, x0);
                int xTo = Math.min(w, x0 + kw);
                int m = lowest;
                int nan = 0;
                for (int iy = yFrom; iy < yTo; iy++) {
                    int row = iy * w;
                    for (int ix = xFrom; ix < xTo; ix++) {
                        float v = plane[row + ix];
                        m = Math.max(m, key(v));
                        // 1 when |bits| is above infinity's, that is NaN; arithmetic, no branch.
                        nan |= (0x7f800000 - (Float.floatToRawIntBits(v) & 0x7fffffff)) >>> 31;
                    }
                }
                // key is its own inverse. NaN anywhere in the window gives NaN, as in the reference kernel.
                result[oy * g.ow() + ox] = nan != 0 ? Float.NaN : Float.intBitsToFloat(m ^ ((m >> 31) & 0x7fffffff));
            }
        }
    }

    /**
     * The common 2x2, stride 2, unpadded window in two passes: the maximum of each pair of rows, elementwise over
     * contiguous arrays (Math.max, which the JIT vectorizes here and which keeps NaN and ranks -0 below +0), then of
     * each pair of columns with the branch-free integer ranking. Half the per-output work of four ranked loads.
     */
    private void maxPlane2x2() {
        int w = g.w();
        int ow = g.ow();
        int span = 2 * ow;
        float[] pairs = rowPairs;
        for (int oy = 0; oy < g.oh(); oy++) {
            int r0 = 2 * oy * w;
            int r1 = r0 + w;
            for (int i = 0; i < span; i++) {
                pairs[i] = Math.max(plane[r0 + i], plane[r1 + i]);
            }
            int o = oy * ow;
            for (int ox = 0; ox < ow; ox++) {
                float a = pairs[2 * ox];
                float b = pairs[2 * ox + 1];
                int m = Math.max(key(a), key(b));
                int nan = ((0x7f800000 - (Float.floatToRawIntBits(a) & 0x7fffffff)) | (0x7f800000 - (Float.floatToRawIntBits(b) & 0x7fffffff))) >>> 31;
                result[o + ox] = nan != 0 ? Float.NaN : Float.intBitsToFloat(m ^ ((m >> 31) & 0x7fffffff));
            }
        }
    }

    private void averagePlane() {
        int w = g.w();
        for (int oy = 0; oy < g.oh(); oy++) {
            int y0 = oy * g.sh() - g.pt();
            int yFrom = Math.max(0, y0);
            int yTo = Math.min(g.h(), y0 + g.kh());
            for (int ox = 0; ox < g.ow(); ox++) {
                int x0 = ox * g.sw() - g.pl();
                int xFrom = Math.max(0, x0);
                int xTo = Math.min(w, x0 + g.kw());
                double sum = 0;
                for (int iy = yFrom; iy < yTo; iy++) {
                    int row = iy * w;
                    for (int ix = xFrom; ix < xTo; ix++) {
                        sum += plane[row + ix];
                    }
                }
                int count = countPads ? g.kh() * g.kw() : (yTo - yFrom) * (xTo - xFrom);
                result[oy * g.ow() + ox] = (float) (sum / count);
            }
        }
    }
}
