// Kiln's CUDA kernels: every op of a compiled graph that is not a GEMM. Compiled once per device by NVRTC
// (CudaModule) for the device's own architecture. One thread per output element (or per row for row-wise ops), in
// grid-stride loops, so any launch size covers any tensor. Sizes are 64-bit; shape metadata that does not depend on
// the batch sits in one small device table per executor (the `meta` pointer) uploaded once.
//
// The Java mirror of each kernel (the test device, EmulatedCudaApi in the engine's tests) follows this file line by
// line: change both together.

#define KILN_LOOP(i, n) for (long long i = (long long) blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (long long) blockDim.x * gridDim.x)

// Activation codes (CudaLowering.activationCode): 0 none, 1 relu, 2 sigmoid, 3 tanh, 4 gelu (erf form).
__device__ __forceinline__ float kiln_activate(float x, int act) {
    switch (act) {
        case 1: return x > 0.0f ? x : (x != x ? x : 0.0f);
        case 2: return 1.0f / (1.0f + expf(-x));
        case 3: return tanhf(x);
        case 4: return 0.5f * x * (1.0f + erff(x * 0.70710678118654752440f));
        default: return x;
    }
}

extern "C" {

// Unary op codes (CudaLowering.unaryCode): 0 exp, 1 log, 2 sqrt, 3 erf, 4 neg, 5 identity, 10 + activation code.
__global__ void kiln_unary(const float* x, float* y, long long n, int op) {
    KILN_LOOP(i, n) {
        float v = x[i];
        float r;
        switch (op) {
            case 0: r = expf(v); break;
            case 1: r = logf(v); break;
            case 2: r = sqrtf(v); break;
            case 3: r = erff(v); break;
            case 4: r = -v; break;
            case 5: r = v; break;
            default: r = kiln_activate(v, op - 10); break;
        }
        y[i] = r;
    }
}

// y[r, j] = act(y[r, j] + bias[j]) for rows of m values (bias may be null): the epilogue of a GEMM whose activation
// cuBLASLt has no exact form for (GELU: cuBLASLt's is the tanh approximation).
__global__ void kiln_bias_activate(float* y, const float* bias, long long n, int m, int act) {
    KILN_LOOP(i, n) {
        float v = y[i];
        if (bias != 0) {
            v += bias[i % m];
        }
        y[i] = kiln_activate(v, act);
    }
}

// Binary op codes: 0 add, 1 sub, 2 mul, 3 div, 4 pow. meta[0..rank) output sizes (axis 0 unused: it absorbs the
// rest, which is how the batch size stays out of the table), meta[rank..2 rank) a's strides, meta[2 rank..3 rank)
// b's strides (0 along broadcast axes).
__global__ void kiln_binary(const float* a, const float* b, float* y, long long n, int op, int rank, const long long* meta) {
    KILN_LOOP(i, n) {
        long long rest = i;
        long long ai = 0;
        long long bi = 0;
        for (int d = rank - 1; d >= 0; d--) {
            long long c = d == 0 ? rest : rest % meta[d];
            if (d > 0) {
                rest /= meta[d];
            }
            ai += c * meta[rank + d];
            bi += c * meta[2 * rank + d];
        }
        float u = a[ai];
        float v = b[bi];
        float r;
        switch (op) {
            case 0: r = u + v; break;
            case 1: r = u - v; break;
            case 2: r = u * v; break;
            case 3: r = u / v; break;
            default: r = powf(u, v); break;
        }
        y[i] = r;
    }
}

// y = permutation of x: meta[0..rank) output sizes (axis 0 absorbs the rest), meta[rank..2 rank) the stride in x of
// each output axis.
__global__ void kiln_transpose(const float* x, float* y, long long n, int rank, const long long* meta) {
    KILN_LOOP(i, n) {
        long long rest = i;
        long long xi = 0;
        for (int d = rank - 1; d >= 0; d--) {
            long long c = d == 0 ? rest : rest % meta[d];
            if (d > 0) {
                rest /= meta[d];
            }
            xi += c * meta[rank + d];
        }
        y[i] = x[xi];
    }
}

// Rows of a slab copy: dst[o * dstRow + dstOffset + k] = src[o * srcRow + srcOffset + k] for k < rowLength. Concat
// (one launch per input) and split (one per output) are both this.
__global__ void kiln_copy_rows(const float* src, float* dst, long long n, long long rowLength, long long srcRow, long long srcOffset,
                               long long dstRow, long long dstOffset) {
    KILN_LOOP(i, n) {
        long long o = i / rowLength;
        long long k = i - o * rowLength;
        dst[o * dstRow + dstOffset + k] = src[o * srcRow + srcOffset + k];
    }
}

// Softmax along an axis of `length` values spaced `inner` apart; one thread per (outer, inner) line.
__global__ void kiln_softmax(const float* x, float* y, long long lines, int length, long long inner) {
    KILN_LOOP(line, lines) {
        long long o = line / inner;
        long long base = o * length * inner + (line - o * inner);
        float m = __int_as_float(0xff800000);  // -infinity (NVRTC has no math.h)
        for (int k = 0; k < length; k++) {
            m = fmaxf(m, x[base + k * inner]);
        }
        float sum = 0.0f;
        for (int k = 0; k < length; k++) {
            float e = expf(x[base + k * inner] - m);
            y[base + k * inner] = e;
            sum += e;
        }
        float scale = 1.0f / sum;
        for (int k = 0; k < length; k++) {
            y[base + k * inner] *= scale;
        }
    }
}

// Sum (scale 1) or mean (scale 1/length) over `length` values spaced `inner` apart; one thread per output.
__global__ void kiln_reduce(const float* x, float* y, long long lines, int length, long long inner, float scale) {
    KILN_LOOP(line, lines) {
        long long o = line / inner;
        long long base = o * length * inner + (line - o * inner);
        float sum = 0.0f;
        for (int k = 0; k < length; k++) {
            sum += x[base + k * inner];
        }
        y[line] = sum * scale;
    }
}

// Layer norm over the last axis (rows of `length`): mean, biased variance, then gamma and beta; one thread per row.
__global__ void kiln_layer_norm(const float* x, const float* gamma, const float* beta, float* y, long long rows, int length, float epsilon) {
    KILN_LOOP(r, rows) {
        const float* row = x + r * length;
        float mean = 0.0f;
        for (int k = 0; k < length; k++) {
            mean += row[k];
        }
        mean /= length;
        float var = 0.0f;
        for (int k = 0; k < length; k++) {
            float d = row[k] - mean;
            var += d * d;
        }
        float inv = rsqrtf(var / length + epsilon);
        for (int k = 0; k < length; k++) {
            y[r * length + k] = (row[k] - mean) * inv * gamma[k] + beta[k];
        }
    }
}

// Direct 2-D convolution, NCHW, grouped, strided, padded, dilated, with bias and activation; one thread per output.
// g: c h w m kh kw sh sw pt pl dh dw groups oh ow act (CudaLowering.convMeta).
__global__ void kiln_conv2d(const float* x, const float* w, const float* bias, float* y, long long n, const long long* g) {
    int c = (int) g[0], h = (int) g[1], wd = (int) g[2], m = (int) g[3], kh = (int) g[4], kw = (int) g[5];
    int sh = (int) g[6], sw = (int) g[7], pt = (int) g[8], pl = (int) g[9], dh = (int) g[10], dw = (int) g[11];
    int groups = (int) g[12], oh = (int) g[13], ow = (int) g[14], act = (int) g[15];
    int cg = c / groups;
    int mg = m / groups;
    KILN_LOOP(i, n) {
        int ox = (int) (i % ow);
        int oy = (int) ((i / ow) % oh);
        int oc = (int) ((i / ((long long) ow * oh)) % m);
        long long image = i / ((long long) ow * oh * m);
        int group = oc / mg;
        float sum = bias != 0 ? bias[oc] : 0.0f;
        for (int ci = 0; ci < cg; ci++) {
            const float* plane = x + (image * c + group * cg + ci) * (long long) h * wd;
            const float* kernel = w + ((long long) oc * cg + ci) * kh * kw;
            for (int ky = 0; ky < kh; ky++) {
                int iy = oy * sh - pt + ky * dh;
                if (iy < 0 || iy >= h) {
                    continue;
                }
                for (int kx = 0; kx < kw; kx++) {
                    int ix = ox * sw - pl + kx * dw;
                    if (ix >= 0 && ix < wd) {
                        sum += plane[iy * wd + ix] * kernel[ky * kw + kx];
                    }
                }
            }
        }
        y[i] = kiln_activate(sum, act);
    }
}

// Max (mode 0) or average pooling (mode 1: divide by the whole window; mode 2: by the cells inside the input), NCHW.
// g: h w kh kw sh sw pt pl oh ow (CudaLowering.poolMeta). A NaN in a max window gives NaN, as on the CPU.
__global__ void kiln_pool2d(const float* x, float* y, long long n, int mode, const long long* g) {
    int h = (int) g[0], wd = (int) g[1], kh = (int) g[2], kw = (int) g[3], sh = (int) g[4], sw = (int) g[5];
    int pt = (int) g[6], pl = (int) g[7], oh = (int) g[8], ow = (int) g[9];
    KILN_LOOP(i, n) {
        int ox = (int) (i % ow);
        int oy = (int) ((i / ow) % oh);
        long long plane = i / ((long long) ow * oh);
        const float* p = x + plane * h * wd;
        float acc = mode == 0 ? __int_as_float(0xff800000) : 0.0f;
        int cells = 0;
        bool nan = false;
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
                float v = p[iy * wd + ix];
                if (mode == 0) {
                    nan |= v != v;
                    acc = fmaxf(acc, v);
                } else {
                    acc += v;
                }
                cells++;
            }
        }
        y[i] = mode == 0 ? (nan ? __int_as_float(0x7fc00000) : acc) : acc / (mode == 1 ? kh * kw : cells);
    }
}

// Row-major C[m, n] = A[m, k] * op(B) + bias, op(B) = B[n, k]^T (transB 1, dense weights) or B[k, n] (transB 0), then
// the activation; `count` matrices spaced by the strides (stride 0: shared). The fallback GEMM when cuBLASLt is not
// installed: 16x16 tiles through shared memory, one output per thread, grid (m/16, n/16, matrices), block (16, 16).
__global__ void kiln_gemm(const float* a, const float* b, const float* bias, float* c, int m, int n, int k, int transB,
                          long long strideA, long long strideB, long long strideC, int act) {
    // A 64x64 tile of C per block of 16x16 threads, 4x4 outputs per thread (rows ty + 16i, columns tx + 16j, so that
    // a warp reads shared memory without bank conflicts); k in slices of 16 through shared memory.
    __shared__ float ta[16][64 + 1];
    __shared__ float tb[16][64 + 1];
    long long z = blockIdx.z;
    a += z * strideA;
    b += z * strideB;
    c += z * strideC;
    int tx = threadIdx.x;
    int ty = threadIdx.y;
    int tid = ty * 16 + tx;
    long long rowBase = (long long) blockIdx.x * 64;
    int colBase = blockIdx.y * 64;
    float acc[4][4];
    for (int i = 0; i < 4; i++) {
        for (int j = 0; j < 4; j++) {
            acc[i][j] = 0.0f;
        }
    }
    for (int t = 0; t < k; t += 16) {
        for (int l = 0; l < 4; l++) {
            // A: rows ty + 16l of the tile, k index tx (consecutive threads read consecutive k).
            long long row = rowBase + ty + 16 * l;
            int ak = t + tx;
            ta[tx][ty + 16 * l] = row < m && ak < k ? a[row * k + ak] : 0.0f;
            int e = tid + 256 * l;
            if (transB) {
                // B is [n, k]: consecutive threads read consecutive k of one column.
                int bk = t + (e & 15);
                int col = colBase + (e >> 4);
                tb[e & 15][e >> 4] = col < n && bk < k ? b[(long long) col * k + bk] : 0.0f;
            } else {
                // B is [k, n]: consecutive threads read consecutive columns of one k.
                int bk = t + (e >> 6);
                int col = colBase + (e & 63);
                tb[e >> 6][e & 63] = col < n && bk < k ? b[(long long) bk * n + col] : 0.0f;
            }
        }
        __syncthreads();
        for (int q = 0; q < 16; q++) {
            float av[4];
            float bv[4];
            for (int i = 0; i < 4; i++) {
                av[i] = ta[q][ty + 16 * i];
                bv[i] = tb[q][tx + 16 * i];
            }
            for (int i = 0; i < 4; i++) {
                for (int j = 0; j < 4; j++) {
                    acc[i][j] += av[i] * bv[j];
                }
            }
        }
        __syncthreads();
    }
    for (int i = 0; i < 4; i++) {
        long long row = rowBase + ty + 16 * i;
        if (row >= m) {
            continue;
        }
        for (int j = 0; j < 4; j++) {
            int col = colBase + tx + 16 * j;
            if (col < n) {
                float sum = acc[i][j];
                if (bias != 0) {
                    sum += bias[col];
                }
                c[row * n + col] = kiln_activate(sum, act);
            }
        }
    }
}

}
