package dev.kiln.engine.backend.cuda;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;
import dev.kiln.engine.ops.MathFunctions;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * A GPU in plain Java for the backend's tests: device memory as separate blocks at made-up addresses, streams that run
 * each call at once (recording what ran on which stream), and every kernel of {@code kernels.cu} written again line
 * by line, plus a row-major GEMM. It counts live device and pinned allocations so tests can prove nothing leaks, and
 * can be given a memory limit to make allocations fail as a full GPU does.
 */
public final class EmulatedCudaApi implements CudaApi {
    private static final long BLOCK_SPACING = 1L << 36;

    private final TreeMap<Long, ByteBuffer> device = new TreeMap<>();
    private final Map<ByteBuffer, Boolean> pinned = new IdentityHashMap<>();
    private final long memoryLimit;
    private long deviceBytes;
    private long nextBlock = 1;
    private long nextStream = 1;
    /** "stream:what" for every copy, GEMM and launch, in order. */
    final List<String> log = new ArrayList<>();
    /** Every kernel prepared, with the C types of its arguments as the lowering declared them. */
    final Map<String, List<ArgKind>> prepared = new TreeMap<>();

    public EmulatedCudaApi() {
        this(Long.MAX_VALUE);
    }

    public EmulatedCudaApi(long memoryLimit) {
        this.memoryLimit = memoryLimit;
    }

    public long liveDeviceBytes() {
        return deviceBytes;
    }

    public int liveDeviceBlocks() {
        return device.size();
    }

    public int livePinnedBuffers() {
        return pinned.size();
    }

    @Override
    public String describe() {
        return "emulated GPU";
    }

    @Override
    public long malloc(long bytes) {
        if (deviceBytes + bytes > memoryLimit) {
            throw KilnException.of(ErrorCode.DEVICE_OUT_OF_MEMORY, "emulated GPU: %d bytes requested, %d of %d in use", bytes, deviceBytes, memoryLimit);
        }
        long address = nextBlock++ * BLOCK_SPACING;
        device.put(address, ByteBuffer.allocate(Math.toIntExact(bytes)).order(ByteOrder.LITTLE_ENDIAN));
        deviceBytes += bytes;
        return address;
    }

    @Override
    public void free(long address) {
        ByteBuffer block = device.remove(address);
        if (block == null) {
            throw new IllegalStateException("free of an address that is not a live block: " + address);
        }
        deviceBytes -= block.capacity();
    }

    @Override
    public ByteBuffer mallocHost(long bytes) {
        ByteBuffer b = ByteBuffer.allocateDirect(Math.toIntExact(bytes)).order(ByteOrder.LITTLE_ENDIAN);
        pinned.put(b, true);
        return b;
    }

    @Override
    public void freeHost(ByteBuffer buffer) {
        if (pinned.remove(buffer) == null) {
            throw new IllegalStateException("freeHost of a buffer that is not live pinned memory");
        }
    }

    @Override
    public long createStream() {
        return nextStream++;
    }

    @Override
    public void destroyStream(long stream) {
    }

    /** The block holding {@code address} and the byte offset in it, checking {@code bytes} fit. */
    private ByteBuffer block(long address, long bytes) {
        Map.Entry<Long, ByteBuffer> e = device.floorEntry(address);
        if (e == null || address - e.getKey() + bytes > e.getValue().capacity()) {
            throw new IllegalStateException("device access outside any block: address " + address + ", " + bytes + " bytes");
        }
        ByteBuffer b = e.getValue().duplicate().order(ByteOrder.LITTLE_ENDIAN);
        b.position((int) (address - e.getKey()));
        return b.slice().order(ByteOrder.LITTLE_ENDIAN);
    }

    /** Floats from {@code address} to the end of its block. */
    private FloatBuffer floats(long address) {
        if (address == 0) {
            return null;
        }
        return block(address, 0).asFloatBuffer();
    }

    private long[] longs(long address, int count) {
        ByteBuffer b = block(address, 8L * count);
        long[] out = new long[count];
        for (int i = 0; i < count; i++) {
            out[i] = b.getLong(8 * i);
        }
        return out;
    }

    @Override
    public void copyToDevice(long dst, ByteBuffer src, long srcOffset, long bytes, long stream) {
        ByteBuffer from = src.duplicate();
        from.limit(Math.toIntExact(srcOffset + bytes)).position(Math.toIntExact(srcOffset));
        block(dst, bytes).put(from);
        log.add(stream + ":h2d");
    }

    @Override
    public void copyToHost(ByteBuffer dst, long dstOffset, long src, long bytes, long stream) {
        ByteBuffer from = block(src, bytes);
        from.limit(Math.toIntExact(bytes));
        ByteBuffer to = dst.duplicate();
        to.position(Math.toIntExact(dstOffset));
        to.put(from);
        log.add(stream + ":d2h");
    }

    @Override
    public void synchronize(long stream) {
    }

    @Override
    public Launch prepare(String name, ArgKind... args) {
        prepared.put(name, List.of(args));
        return new Launch() {
            final long[] values = new long[args.length];
            final float[] floats = new float[args.length];

            @Override
            public void set(int index, long value) {
                values[index] = value;
            }

            @Override
            public void setFloat(int index, float value) {
                floats[index] = value;
            }

            @Override
            public void launch(long threads, long stream) {
                log.add(stream + ":" + name);
                run(name, values, floats, threads);
            }
        };
    }

    private static float activate(float x, int act) {
        switch (act) {
            case 1: return x > 0f ? x : (x != x ? x : 0f);
            case 2: return 1f / (1f + (float) Math.exp(-x));
            case 3: return (float) Math.tanh(x);
            case 4: return 0.5f * x * (1f + (float) MathFunctions.erf(x * 0.70710678118654752440f));
            default: return x;
        }
    }

    /** The kernels of kernels.cu, one logical thread after another. */
    private void run(String name, long[] a, float[] f, long threads) {
        switch (name) {
            case "kiln_unary" -> {
                FloatBuffer x = floats(a[0]);
                FloatBuffer y = floats(a[1]);
                long n = a[2];
                int op = (int) a[3];
                for (int i = 0; i < n; i++) {
                    float v = x.get(i);
                    float r = switch (op) {
                        case 0 -> (float) Math.exp(v);
                        case 1 -> (float) Math.log(v);
                        case 2 -> (float) Math.sqrt(v);
                        case 3 -> (float) MathFunctions.erf(v);
                        case 4 -> -v;
                        case 5 -> v;
                        default -> activate(v, op - 10);
                    };
                    y.put(i, r);
                }
            }
            case "kiln_bias_activate" -> {
                FloatBuffer y = floats(a[0]);
                FloatBuffer bias = floats(a[1]);
                long n = a[2];
                int m = (int) a[3];
                int act = (int) a[4];
                for (int i = 0; i < n; i++) {
                    float v = y.get(i);
                    if (bias != null) {
                        v += bias.get(i % m);
                    }
                    y.put(i, activate(v, act));
                }
            }
            case "kiln_binary" -> {
                FloatBuffer x = floats(a[0]);
                FloatBuffer z = floats(a[1]);
                FloatBuffer y = floats(a[2]);
                long n = a[3];
                int op = (int) a[4];
                int rank = (int) a[5];
                long[] meta = longs(a[6], 3 * rank);
                for (long i = 0; i < n; i++) {
                    long rest = i;
                    long ai = 0;
                    long bi = 0;
                    for (int d = rank - 1; d >= 0; d--) {
                        long c = d == 0 ? rest : rest % meta[d];
                        if (d > 0) {
                            rest /= meta[d];
                        }
                        ai += c * meta[rank + d];
                        bi += c * meta[2 * rank + d];
                    }
                    float u = x.get((int) ai);
                    float v = z.get((int) bi);
                    float r = switch (op) {
                        case 0 -> u + v;
                        case 1 -> u - v;
                        case 2 -> u * v;
                        case 3 -> u / v;
                        default -> (float) Math.pow(u, v);
                    };
                    y.put((int) i, r);
                }
            }
            case "kiln_transpose" -> {
                FloatBuffer x = floats(a[0]);
                FloatBuffer y = floats(a[1]);
                long n = a[2];
                int rank = (int) a[3];
                long[] meta = longs(a[4], 2 * rank);
                for (long i = 0; i < n; i++) {
                    long rest = i;
                    long xi = 0;
                    for (int d = rank - 1; d >= 0; d--) {
                        long c = d == 0 ? rest : rest % meta[d];
                        if (d > 0) {
                            rest /= meta[d];
                        }
                        xi += c * meta[rank + d];
                    }
                    y.put((int) i, x.get((int) xi));
                }
            }
            case "kiln_copy_rows" -> {
                FloatBuffer src = floats(a[0]);
                FloatBuffer dst = floats(a[1]);
                long n = a[2];
                long rowLength = a[3];
                for (long i = 0; i < n; i++) {
                    long o = i / rowLength;
                    long k = i - o * rowLength;
                    dst.put((int) (o * a[6] + a[7] + k), src.get((int) (o * a[4] + a[5] + k)));
                }
            }
            case "kiln_softmax" -> {
                FloatBuffer x = floats(a[0]);
                FloatBuffer y = floats(a[1]);
                long lines = a[2];
                int length = (int) a[3];
                long inner = a[4];
                for (long line = 0; line < lines; line++) {
                    long o = line / inner;
                    int base = (int) (o * length * inner + (line - o * inner));
                    float m = Float.NEGATIVE_INFINITY;
                    for (int k = 0; k < length; k++) {
                        m = Math.max(m, x.get(base + k * (int) inner));
                    }
                    float sum = 0f;
                    for (int k = 0; k < length; k++) {
                        float e = (float) Math.exp(x.get(base + k * (int) inner) - m);
                        y.put(base + k * (int) inner, e);
                        sum += e;
                    }
                    float scale = 1f / sum;
                    for (int k = 0; k < length; k++) {
                        y.put(base + k * (int) inner, y.get(base + k * (int) inner) * scale);
                    }
                }
            }
            case "kiln_reduce" -> {
                FloatBuffer x = floats(a[0]);
                FloatBuffer y = floats(a[1]);
                long lines = a[2];
                int length = (int) a[3];
                long inner = a[4];
                float scale = f[5];
                for (long line = 0; line < lines; line++) {
                    long o = line / inner;
                    long base = o * length * inner + (line - o * inner);
                    float sum = 0f;
                    for (int k = 0; k < length; k++) {
                        sum += x.get((int) (base + k * inner));
                    }
                    y.put((int) line, sum * scale);
                }
            }
            case "kiln_layer_norm" -> {
                FloatBuffer x = floats(a[0]);
                FloatBuffer gamma = floats(a[1]);
                FloatBuffer beta = floats(a[2]);
                FloatBuffer y = floats(a[3]);
                long rows = a[4];
                int length = (int) a[5];
                float epsilon = f[6];
                for (int r = 0; r < rows; r++) {
                    float mean = 0f;
                    for (int k = 0; k < length; k++) {
                        mean += x.get(r * length + k);
                    }
                    mean /= length;
                    float var = 0f;
                    for (int k = 0; k < length; k++) {
                        float d = x.get(r * length + k) - mean;
                        var += d * d;
                    }
                    float inv = (float) (1.0 / Math.sqrt(var / length + epsilon));
                    for (int k = 0; k < length; k++) {
                        y.put(r * length + k, (x.get(r * length + k) - mean) * inv * gamma.get(k) + beta.get(k));
                    }
                }
            }
            case "kiln_conv2d" -> {
                FloatBuffer x = floats(a[0]);
                FloatBuffer w = floats(a[1]);
                FloatBuffer bias = floats(a[2]);
                FloatBuffer y = floats(a[3]);
                long n = a[4];
                long[] g = longs(a[5], 16);
                int c = (int) g[0], h = (int) g[1], wd = (int) g[2], m = (int) g[3], kh = (int) g[4], kw = (int) g[5];
                int sh = (int) g[6], sw = (int) g[7], pt = (int) g[8], pl = (int) g[9], dh = (int) g[10], dw = (int) g[11];
                int groups = (int) g[12], oh = (int) g[13], ow = (int) g[14], act = (int) g[15];
                int cg = c / groups;
                int mg = m / groups;
                for (long i = 0; i < n; i++) {
                    int ox = (int) (i % ow);
                    int oy = (int) ((i / ow) % oh);
                    int oc = (int) ((i / ((long) ow * oh)) % m);
                    long image = i / ((long) ow * oh * m);
                    int group = oc / mg;
                    float sum = bias != null ? bias.get(oc) : 0f;
                    for (int ci = 0; ci < cg; ci++) {
                        long plane = (image * c + group * cg + ci) * (long) h * wd;
                        long kernel = ((long) oc * cg + ci) * kh * kw;
                        for (int ky = 0; ky < kh; ky++) {
                            int iy = oy * sh - pt + ky * dh;
                            if (iy < 0 || iy >= h) {
                                continue;
                            }
                            for (int kx = 0; kx < kw; kx++) {
                                int ix = ox * sw - pl + kx * dw;
                                if (ix >= 0 && ix < wd) {
                                    sum += x.get((int) (plane + iy * wd + ix)) * w.get((int) (kernel + ky * kw + kx));
                                }
                            }
                        }
                    }
                    y.put((int) i, activate(sum, act));
                }
            }
            case "kiln_pool2d" -> {
                FloatBuffer x = floats(a[0]);
                FloatBuffer y = floats(a[1]);
                long n = a[2];
                int mode = (int) a[3];
                long[] g = longs(a[4], 10);
                int h = (int) g[0], wd = (int) g[1], kh = (int) g[2], kw = (int) g[3], sh = (int) g[4], sw = (int) g[5];
                int pt = (int) g[6], pl = (int) g[7], oh = (int) g[8], ow = (int) g[9];
                for (long i = 0; i < n; i++) {
                    int ox = (int) (i % ow);
                    int oy = (int) ((i / ow) % oh);
                    long plane = i / ((long) ow * oh);
                    float acc = mode == 0 ? Float.NEGATIVE_INFINITY : 0f;
                    int cells = 0;
                    boolean nan = false;
                    for (int ky = 0; ky < kh; ky++) {
                        int iy = oy * sh - pt + ky;
                        if (iy < 0 || iy >= h) {
                            continue;
                        }
                        for (int kx = 0; kx < kw; kx++) {
                            int ix = ox * sw - pl + kx;
                            if (ix < 0 || ix >= wd) {
                                continue;
                            }
                            float v = x.get((int) (plane * h * wd + iy * wd + ix));
                            if (mode == 0) {
                                nan |= v != v;
                                acc = Math.max(acc, v);
                            } else {
                                acc += v;
                            }
                            cells++;
                        }
                    }
                    y.put((int) i, mode == 0 ? (nan ? Float.NaN : acc) : acc / (mode == 1 ? kh * kw : cells));
                }
            }
            default -> throw new IllegalStateException("kernels.cu has no kernel " + name);
        }
    }

    @Override
    public void gemm(boolean transB, boolean relu, long a, long b, long bias, long c, long m, long n, long k, long count,
                     long strideA, long strideB, long strideC, long stream) {
        log.add(stream + ":gemm");
        FloatBuffer fa = floats(a);
        FloatBuffer fb = floats(b);
        FloatBuffer fbias = floats(bias);
        FloatBuffer fc = floats(c);
        for (long z = 0; z < count; z++) {
            for (long i = 0; i < m; i++) {
                for (long j = 0; j < n; j++) {
                    double sum = 0;
                    for (long p = 0; p < k; p++) {
                        float bv = transB ? fb.get((int) (z * strideB + j * k + p)) : fb.get((int) (z * strideB + p * n + j));
                        sum += (double) fa.get((int) (z * strideA + i * k + p)) * bv;
                    }
                    float v = (float) sum + (fbias != null ? fbias.get((int) j) : 0f);
                    fc.put((int) (z * strideC + i * n + j), relu ? activate(v, 1) : v);
                }
            }
        }
    }

    @Override
    public void close() {
    }
}
