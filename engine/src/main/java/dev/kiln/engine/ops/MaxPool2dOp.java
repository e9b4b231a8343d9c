package dev.kiln.engine.ops;

import dev.kiln.engine.backend.Kernel;
import dev.kiln.engine.backend.Slot;
import dev.kiln.engine.ir.Attributes;
import dev.kiln.engine.ir.TensorType;
import dev.kiln.engine.tensor.Dim;
import dev.kiln.engine.tensor.Shape;

import java.nio.FloatBuffer;
import java.util.List;

/** 2-D max pooling over NCHW input (floor output size; padded positions never win), as ONNX MaxPool with ceil_mode 0. */
public final class MaxPool2dOp extends BaseOp {
    MaxPool2dOp() {
        super(OpRegistry.MAX_POOL2D, "2-D max pooling over NCHW input (ONNX MaxPool, ceil_mode 0)", List.of("x"), 1,
                List.of(attr("kernel", "int[2]", true, "window height and width"),
                        attr("strides", "int[2]", false, "stride along H and W (default [1, 1])"),
                        attr("pads", "int[4]", false, "padding [top, left, bottom, right] (default zeros)")));
    }

    public record Geometry(int c, int h, int w, int kh, int kw, int sh, int sw, int pt, int pl, int oh, int ow) { }

    public static Geometry geometry(String op, Shape x, Attributes a) {
        if (x.rank() != 4 || x.dim(1).isSymbolic() || x.dim(2).isSymbolic() || x.dim(3).isSymbolic()) {
            throw shapeError("%s needs x [N, C, H, W] with concrete C, H, W but got %s", op, x);
        }
        long[] k = a.getLongs("kernel");
        long[] s = Conv2dOp.longs(a, "strides", 1, 1);
        long[] p = Conv2dOp.longs(a, "pads", 0, 0, 0, 0);
        if (k.length != 2 || s.length != 2 || p.length != 4 || k[0] <= 0 || k[1] <= 0 || s[0] <= 0 || s[1] <= 0
                || java.util.Arrays.stream(p).anyMatch(v -> v < 0)) {
            throw shapeError("%s needs kernel int[2] > 0, strides int[2] > 0 and pads int[4] >= 0 but got %s, %s, %s", op,
                    java.util.Arrays.toString(k), java.util.Arrays.toString(s), java.util.Arrays.toString(p));
        }
        if (p[0] >= k[0] || p[2] >= k[0] || p[1] >= k[1] || p[3] >= k[1]) {
            throw shapeError("%s: pads %s must be smaller than the kernel %s (a window entirely in padding has no value)", op,
                    java.util.Arrays.toString(p), java.util.Arrays.toString(k));
        }
        int h = (int) x.dim(2).size();
        int w = (int) x.dim(3).size();
        // Floor division of a non-negative span only: a kernel larger than the padded input is an error, not size 1.
        if (h + p[0] + p[2] - k[0] < 0 || w + p[1] + p[3] - k[1] < 0) {
            throw shapeError("%s: kernel %s does not fit input %s with pads %s", op, java.util.Arrays.toString(k), x, java.util.Arrays.toString(p));
        }
        int oh = (int) ((h + p[0] + p[2] - k[0]) / s[0] + 1);
        int ow = (int) ((w + p[1] + p[3] - k[1]) / s[1] + 1);
        return new Geometry((int) x.dim(1).size(), h, w, (int) k[0], (int) k[1], (int) s[0], (int) s[1], (int) p[0], (int) p[1], oh, ow);
    }

    @Override
    public List<TensorType> inferTypes(List<TensorType> inputs, Attributes attributes) {
        checkArity(inputs);
        Shape x = inputs.get(0).shape();
        Geometry g = geometry(name(), x, attributes);
        return List.of(TensorType.float32(Shape.of(x.dim(0), x.dim(1), Dim.of(g.oh()), Dim.of(g.ow()))));
    }

    @Override
    public Kernel newKernel(Slot[] inputs, Slot[] outputs, Attributes attributes) {
        Slot x = inputs[0];
        Slot out = outputs[0];
        Geometry g = geometry(name(), x.type().shape(), attributes);
        return batch -> {
            int planes = (int) x.size(0, batch) * g.c();
            FloatBuffer xb = x.buffer();
            FloatBuffer ob = out.buffer();
            for (int plane = 0; plane < planes; plane++) {
                for (int oy = 0; oy < g.oh(); oy++) {
                    for (int ox = 0; ox < g.ow(); ox++) {
                        float max = Float.NEGATIVE_INFINITY;
                        boolean nan = false;
                        for (int ky = 0; ky < g.kh(); ky++) {
                            int iy = oy * g.sh() - g.pt() + ky;
                            if (iy < 0 || iy >= g.h()) {
                                continue;
                            }
                            for (int kx = 0; kx < g.kw(); kx++) {
                                int ix = ox * g.sw() - g.pl() + kx;
                                if (ix < 0 || ix >= g.w()) {
                                    continue;
                                }
                                float v = xb.get(x.offset() + (plane * g.h() + iy) * g.w() + ix);
                                nan |= Float.isNaN(v);
                                max = Math.max(max, v);
                            }
                        }
                        ob.put(out.offset() + (plane * g.oh() + oy) * g.ow() + ox, nan ? Float.NaN : max);
                    }
                }
            }
        };
    }
}
