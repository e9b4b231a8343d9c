package dev.kiln.engine.backend.cpu;

import dev.kiln.engine.backend.Kernel;
import dev.kiln.engine.backend.Slot;
import dev.kiln.engine.ir.Attributes;
import dev.kiln.engine.ops.Conv2dOp;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.openblas.global.openblas_nolapack;

import java.nio.FloatBuffer;

/**
 * conv2d as im2col + one OpenBLAS sgemm per image and group: the input patches are laid out as a
 * {@code [C/groups * kH * kW, oH * oW]} matrix, multiplied by the group's {@code [M/groups, C/groups * kH * kW]} weights
 * straight into the output, then the bias is added. The patch matrix is this kernel's scratch, allocated once (one
 * image's worth) when the executor builds its schedule and freed with it by the JVM (a direct buffer).
 */
final class BlasConvKernel implements Kernel {
    private final Slot x;
    private final Slot bias;
    private final Slot out;
    private final Conv2dOp.Geometry g;
    private final FloatBuffer cols;
    private final FloatPointer colsPointer;
    private final FloatPointer wPointer;
    private final int weightStart;
    private final FloatPointer outPointer;
    private final int patch;
    private final int pixels;

    BlasConvKernel(Slot[] inputs, Slot out, Attributes attributes) {
        this.x = inputs[0];
        this.bias = inputs.length > 2 ? inputs[2] : null;
        this.out = out;
        this.g = Conv2dOp.geometry(x.type().shape(), inputs[1].type().shape(), attributes);
        this.patch = g.c() / g.groups() * g.kh() * g.kw();
        this.pixels = g.oh() * g.ow();
        this.cols = java.nio.ByteBuffer.allocateDirect(Math.max(4, patch * pixels * 4)).order(java.nio.ByteOrder.nativeOrder()).asFloatBuffer();
        this.colsPointer = new FloatPointer(cols);
        this.wPointer = new FloatPointer(inputs[1].buffer());
        this.weightStart = inputs[1].offset();
        this.outPointer = new FloatPointer(out.buffer());
    }

    @Override
    public void run(long batch) {
        int n = (int) x.size(0, batch);
        int cPerGroup = g.c() / g.groups();
        int mPerGroup = g.m() / g.groups();
        FloatBuffer xb = x.buffer();
        for (int b = 0; b < n; b++) {
            for (int group = 0; group < g.groups(); group++) {
                int row = 0;
                for (int ci = 0; ci < cPerGroup; ci++) {
                    int plane = x.offset() + (b * g.c() + group * cPerGroup + ci) * g.h() * g.w();
                    for (int ky = 0; ky < g.kh(); ky++) {
                        for (int kx = 0; kx < g.kw(); kx++) {
                            int base = row * pixels;
                            for (int oy = 0; oy < g.oh(); oy++) {
                                int iy = oy * g.sh() - g.pt() + ky * g.dh();
                                for (int ox = 0; ox < g.ow(); ox++) {
                                    int ix = ox * g.sw() - g.pl() + kx * g.dw();
                                    float v = iy >= 0 && iy < g.h() && ix >= 0 && ix < g.w() ? xb.get(plane + iy * g.w() + ix) : 0f;
                                    cols.put(base + oy * g.ow() + ox, v);
                                }
                            }
                            row++;
                        }
                    }
                }
                int outOffset = out.offset() + (b * g.m() + group * mPerGroup) * pixels;
                int weightOffset = weightStart + group * mPerGroup * patch;
                openblas_nolapack.cblas_sgemm(openblas_nolapack.CblasRowMajor, openblas_nolapack.CblasNoTrans, openblas_nolapack.CblasNoTrans,
                        mPerGroup, pixels, patch, 1f, wPointer.position(weightOffset), patch, colsPointer.position(0), pixels,
                        0f, outPointer.position(outOffset), pixels);
            }
        }
        if (bias != null) {
            FloatBuffer ob = out.buffer();
            for (int b = 0; b < n; b++) {
                for (int m = 0; m < g.m(); m++) {
                    float bv = bias.get(m);
                    int base = out.offset() + (b * g.m() + m) * pixels;
                    for (int p = 0; p < pixels; p++) {
                        ob.put(base + p, ob.get(base + p) + bv);
                    }
                }
            }
        }
    }
}
