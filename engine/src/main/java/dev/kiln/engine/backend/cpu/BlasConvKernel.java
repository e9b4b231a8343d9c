package dev.kiln.engine.backend.cpu;

import dev.kiln.engine.backend.Kernel;
import dev.kiln.engine.backend.Slot;
import dev.kiln.engine.ir.Attributes;
import dev.kiln.engine.ops.Conv2dOp;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.openblas.global.openblas_nolapack;

import java.nio.FloatBuffer;

/**
 * conv2d as im2col + one OpenBLAS sgemm per image and group: the input patches are laid out (on the heap, from one
 * bulk read of the image, interior runs copied with {@code arraycopy}) as a
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
    private final float[] image;
    private final float[] patches;
    private final float[] outImage;
    private final dev.kiln.engine.ops.Activation activation;

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
        this.image = new float[g.c() * g.h() * g.w()];
        this.patches = new float[patch * pixels];
        this.activation = dev.kiln.engine.ops.Activation.fromName(attributes.getString("activation", "none"));
        this.outImage = bias == null && activation == dev.kiln.engine.ops.Activation.NONE ? null : new float[g.m() * pixels];
    }

    @Override
    public void run(long batch) {
        int n = (int) x.size(0, batch);
        int cPerGroup = g.c() / g.groups();
        int mPerGroup = g.m() / g.groups();
        FloatBuffer xb = x.buffer();
        FloatBuffer ob = out.buffer();
        for (int b = 0; b < n; b++) {
            // One bulk read of the image; patches are built on the heap and written with one bulk copy per group
            // (element-wise access to the direct buffers measured 3x slower).
            xb.get(x.offset() + b * image.length, image, 0, image.length);
            for (int group = 0; group < g.groups(); group++) {
                im2col(group * cPerGroup, cPerGroup);
                cols.put(0, patches, 0, patches.length);
                int outOffset = out.offset() + (b * g.m() + group * mPerGroup) * pixels;
                int weightOffset = weightStart + group * mPerGroup * patch;
                openblas_nolapack.cblas_sgemm(openblas_nolapack.CblasRowMajor, openblas_nolapack.CblasNoTrans, openblas_nolapack.CblasNoTrans,
                        mPerGroup, pixels, patch, 1f, wPointer.position(weightOffset), patch, colsPointer.position(0), pixels,
                        0f, outPointer.position(outOffset), pixels);
            }
            if (outImage != null) {
                // Bias and activation in one pass over the image's output, on the heap.
                int base = out.offset() + b * g.m() * pixels;
                ob.get(base, outImage, 0, outImage.length);
                for (int m = 0; m < g.m(); m++) {
                    float bv = bias == null ? 0f : bias.get(m);
                    int from = m * pixels;
                    int end = from + pixels;
                    switch (activation) {
                        case NONE -> {
                            for (int p = from; p < end; p++) {
                                outImage[p] += bv;
                            }
                        }
                        case RELU -> {
                            for (int p = from; p < end; p++) {
                                outImage[p] = Math.max(outImage[p] + bv, 0f);
                            }
                        }
                        case GELU -> {
                            for (int p = from; p < end; p++) {
                                outImage[p] = dev.kiln.engine.ops.MathFunctions.geluFast(outImage[p] + bv);
                            }
                        }
                        default -> {
                            for (int p = from; p < end; p++) {
                                outImage[p] = activation.apply(outImage[p] + bv);
                            }
                        }
                    }
                }
                ob.put(base, outImage, 0, outImage.length);
            }
        }
    }

    /** The {@code [cPerGroup * kH * kW, oH * oW]} patch matrix of channels {@code firstChannel...} of {@link #image}. */
    private void im2col(int firstChannel, int channels) {
        int h = g.h();
        int w = g.w();
        int ow = g.ow();
        int row = 0;
        for (int ci = 0; ci < channels; ci++) {
            int plane = (firstChannel + ci) * h * w;
            for (int ky = 0; ky < g.kh(); ky++) {
                for (int kx = 0; kx < g.kw(); kx++) {
                    int base = row * pixels;
                    int shift = kx * g.dw() - g.pl();
                    // Output columns whose input column ox * sw + shift lies inside [0, w).
                    int oxFrom = shift >= 0 ? 0 : Math.min(ow, (-shift + g.sw() - 1) / g.sw());
                    int oxTo = Math.max(oxFrom, Math.min(ow, w - shift <= 0 ? 0 : (w - shift - 1) / g.sw() + 1));
                    for (int oy = 0; oy < g.oh(); oy++) {
                        int iy = oy * g.sh() - g.pt() + ky * g.dh();
                        int at = base + oy * ow;
                        if (iy < 0 || iy >= h) {
                            java.util.Arrays.fill(patches, at, at + ow, 0f);
                            continue;
                        }
                        java.util.Arrays.fill(patches, at, at + oxFrom, 0f);
                        int src = plane + iy * w + shift;
                        if (oxTo == oxFrom) {
                            // No column of this tap lands inside the image (its start may lie past the end).
                            java.util.Arrays.fill(patches, at, at + ow, 0f);
                            continue;
                        }
                        if (g.sw() == 1) {
                            System.arraycopy(image, src + oxFrom, patches, at + oxFrom, oxTo - oxFrom);
                        } else {
                            for (int ox = oxFrom; ox < oxTo; ox++) {
                                patches[at + ox] = image[src + ox * g.sw()];
                            }
                        }
                        java.util.Arrays.fill(patches, at + oxTo, at + ow, 0f);
                    }
                    row++;
                }
            }
        }
    }
}
