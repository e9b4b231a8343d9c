package dev.kiln.engine.ops;

import dev.kiln.engine.backend.Kernel;
import dev.kiln.engine.backend.Slot;
import dev.kiln.engine.ir.Attributes;
import dev.kiln.engine.ir.TensorType;
import dev.kiln.engine.tensor.Dim;
import dev.kiln.engine.tensor.Shape;

import java.nio.FloatBuffer;
import java.util.List;

/**
 * 2-D convolution, NCHW: {@code x [N, C, H, W]}, {@code weight [M, C/groups, kH, kW]}, optional {@code bias [M]} →
 * {@code [N, M, oH, oW]} with {@code oH = (H + padTop + padBottom - dilation*(kH-1) - 1) / stride + 1} (floor), as ONNX
 * Conv and PyTorch's Conv2d define it.
 */
public final class Conv2dOp extends BaseOp {
    Conv2dOp() {
        super(OpRegistry.CONV2D, "2-D convolution over NCHW input (ONNX Conv / PyTorch Conv2d semantics)",
                List.of("x", "weight", "bias (optional)"), 2,
                List.of(attr("strides", "int[2]", false, "stride along H and W (default [1, 1])"),
                        attr("pads", "int[4]", false, "padding [top, left, bottom, right] (default zeros)"),
                        attr("dilations", "int[2]", false, "dilation along H and W (default [1, 1])"),
                        attr("groups", "int", false, "number of groups; C and M must divide by it (default 1)"),
                        attr("activation", "string", false, "none (default), relu, sigmoid, tanh or gelu, applied to the output (fused by the compiler)")));
    }

    /** The resolved geometry of one convolution. */
    public record Geometry(int c, int h, int w, int m, int kh, int kw, int sh, int sw, int pt, int pl, int pb, int pr, int dh, int dw, int groups,
                    int oh, int ow) { }

    static long[] longs(Attributes a, String name, long... defaults) {
        return a.has(name) ? a.getLongs(name) : defaults;
    }

    public static Geometry geometry(Shape x, Shape w, Attributes a) {
        if (x.rank() != 4 || w.rank() != 4) {
            throw shapeError("conv2d needs x [N, C, H, W] and weight [M, C/groups, kH, kW] but got %s and %s", x, w);
        }
        for (int i = 1; i < 4; i++) {
            if (x.dim(i).isSymbolic()) {
                throw shapeError("conv2d needs concrete C, H, W but got %s", x);
            }
        }
        long[] s = longs(a, "strides", 1, 1);
        long[] p = longs(a, "pads", 0, 0, 0, 0);
        long[] d = longs(a, "dilations", 1, 1);
        int groups = (int) a.getLong("groups", 1);
        int c = (int) x.dim(1).size();
        int h = (int) x.dim(2).size();
        int wd = (int) x.dim(3).size();
        int m = (int) w.dim(0).size();
        int kh = (int) w.dim(2).size();
        int kw = (int) w.dim(3).size();
        if (s.length != 2 || p.length != 4 || d.length != 2 || groups <= 0 || c % groups != 0 || m % groups != 0 || w.dim(1).size() != c / groups) {
            throw shapeError("conv2d: input %s, weight %s, groups %d, strides %s, pads %s, dilations %s do not fit together",
                    x, w, groups, java.util.Arrays.toString(s), java.util.Arrays.toString(p), java.util.Arrays.toString(d));
        }
        long spanH = h + p[0] + p[2] - d[0] * (kh - 1) - 1;
        long spanW = wd + p[1] + p[3] - d[1] * (kw - 1) - 1;
        int oh = spanH < 0 ? 0 : (int) (spanH / s[0] + 1);
        int ow = spanW < 0 ? 0 : (int) (spanW / s[1] + 1);
        if (oh <= 0 || ow <= 0) {
            throw shapeError("conv2d: kernel %dx%d does not fit input %s with pads %s", kh, kw, x, java.util.Arrays.toString(p));
        }
        return new Geometry(c, h, wd, m, kh, kw, (int) s[0], (int) s[1], (int) p[0], (int) p[1], (int) p[2], (int) p[3], (int) d[0], (int) d[1],
                groups, oh, ow);
    }

    @Override
    public List<TensorType> inferTypes(List<TensorType> inputs, Attributes attributes) {
        checkArity(inputs);
        Shape x = inputs.get(0).shape();
        Shape w = inputs.get(1).shape();
        Geometry g = geometry(x, w, attributes);
        if (inputs.size() == 3 && !inputs.get(2).shape().equals(Shape.of(g.m()))) {
            throw shapeError("conv2d bias must be [%d] but got %s", g.m(), inputs.get(2).shape());
        }
        return List.of(TensorType.float32(Shape.of(x.dim(0), Dim.of(g.m()), Dim.of(g.oh()), Dim.of(g.ow()))));
    }

    @Override
    public Kernel newKernel(Slot[] inputs, Slot[] outputs, Attributes attributes) {
        Slot x = inputs[0];
        Slot w = inputs[1];
        Slot bias = inputs.length > 2 ? inputs[2] : null;
        Slot out = outputs[0];
        Geometry g = geometry(x.type().shape(), w.type().shape(), attributes);
        int cPerGroup = g.c() / g.groups();
        int mPerGroup = g.m() / g.groups();
        Activation activation = Activation.fromName(attributes.getString("activation", "none"));
        return batch -> {
            int n = (int) x.size(0, batch);
            FloatBuffer xb = x.buffer();
            FloatBuffer wb = w.buffer();
            FloatBuffer ob = out.buffer();
            for (int b = 0; b < n; b++) {
                for (int m = 0; m < g.m(); m++) {
                    int group = m / mPerGroup;
                    double bv = bias == null ? 0 : bias.get(m);
                    for (int oy = 0; oy < g.oh(); oy++) {
                        for (int ox = 0; ox < g.ow(); ox++) {
                            double sum = bv;
                            for (int ci = 0; ci < cPerGroup; ci++) {
                                int c = group * cPerGroup + ci;
                                for (int ky = 0; ky < g.kh(); ky++) {
                                    int iy = oy * g.sh() - g.pt() + ky * g.dh();
                                    if (iy < 0 || iy >= g.h()) {
                                        continue;
                                    }
                                    for (int kx = 0; kx < g.kw(); kx++) {
                                        int ix = ox * g.sw() - g.pl() + kx * g.dw();
                                        if (ix < 0 || ix >= g.w()) {
                                            continue;
                                        }
                                        sum += xb.get(x.offset() + ((b * g.c() + c) * g.h() + iy) * g.w() + ix)
                                                * wb.get(w.offset() + ((m * cPerGroup + ci) * g.kh() + ky) * g.kw() + kx);
                                    }
                                }
                            }
                            ob.put(out.offset() + ((b * g.m() + m) * g.oh() + oy) * g.ow() + ox, activation.apply((float) sum));
                        }
                    }
                }
            }
        };
    }
}
