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
 * 2-D average pooling over NCHW input (floor output size), as ONNX AveragePool with ceil_mode 0 and PyTorch's
 * AvgPool2d: each window's sum divided by kH·kW when {@code count_include_pad} is 1, or by the number of positions
 * inside the input when it is 0.
 */
public final class AvgPool2dOp extends BaseOp {
    AvgPool2dOp() {
        super(OpRegistry.AVG_POOL2D, "2-D average pooling over NCHW input (ONNX AveragePool, ceil_mode 0)", List.of("x"), 1,
                List.of(attr("kernel", "int[2]", true, "window height and width"),
                        attr("strides", "int[2]", false, "stride along H and W (default [1, 1])"),
                        attr("pads", "int[4]", false, "padding [top, left, bottom, right] (default zeros)"),
                        attr("count_include_pad", "int", false, "1: padded positions count in the divisor (default 0)")));
    }

    @Override
    public List<TensorType> inferTypes(List<TensorType> inputs, Attributes attributes) {
        checkArity(inputs);
        Shape x = inputs.get(0).shape();
        MaxPool2dOp.Geometry g = MaxPool2dOp.geometry(name(), x, attributes);
        return List.of(TensorType.float32(Shape.of(x.dim(0), x.dim(1), Dim.of(g.oh()), Dim.of(g.ow()))));
    }

    @Override
    public Kernel newKernel(Slot[] inputs, Slot[] outputs, Attributes attributes) {
        Slot x = inputs[0];
        Slot out = outputs[0];
        MaxPool2dOp.Geometry g = MaxPool2dOp.geometry(name(), x.type().shape(), attributes);
        boolean countPads = attributes.getLong("count_include_pad", 0) != 0;
        return batch -> {
            int planes = (int) x.size(0, batch) * g.c();
            FloatBuffer xb = x.buffer();
            FloatBuffer ob = out.buffer();
            for (int plane = 0; plane < planes; plane++) {
                for (int oy = 0; oy < g.oh(); oy++) {
                    int y0 = oy * g.sh() - g.pt();
                    int yFrom = Math.max(0, y0);
                    int yTo = Math.min(g.h(), y0 + g.kh());
                    for (int ox = 0; ox < g.ow(); ox++) {
                        int x0 = ox * g.sw() - g.pl();
                        int xFrom = Math.max(0, x0);
                        int xTo = Math.min(g.w(), x0 + g.kw());
                        double sum = 0;
                        for (int iy = yFrom; iy < yTo; iy++) {
                            int row = x.offset() + (plane * g.h() + iy) * g.w();
                            for (int ix = xFrom; ix < xTo; ix++) {
                                sum += xb.get(row + ix);
                            }
                        }
                        int count = countPads ? g.kh() * g.kw() : (yTo - yFrom) * (xTo - xFrom);
                        ob.put(out.offset() + (plane * g.oh() + oy) * g.ow() + ox, (float) (sum / count));
                    }
                }
            }
        };
    }
}
