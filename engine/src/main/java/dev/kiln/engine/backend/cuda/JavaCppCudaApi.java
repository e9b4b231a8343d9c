package dev.kiln.engine.backend.cuda;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;
import org.bytedeco.cuda.cublas.cublasLtContext;
import org.bytedeco.cuda.cublas.cublasLtMatmulDescOpaque_t;
import org.bytedeco.cuda.cublas.cublasLtMatmulHeuristicResult_t;
import org.bytedeco.cuda.cublas.cublasLtMatmulPreferenceOpaque_t;
import org.bytedeco.cuda.cublas.cublasLtMatrixLayoutOpaque_t;
import org.bytedeco.cuda.cudart.CUfunc_st;
import org.bytedeco.cuda.cudart.CUmod_st;
import org.bytedeco.cuda.cudart.CUstream_st;
import org.bytedeco.cuda.cudart.cudaDeviceProp;
import org.bytedeco.cuda.global.cublas;
import org.bytedeco.cuda.global.cudart;
import org.bytedeco.cuda.global.nvrtc;
import org.bytedeco.cuda.nvrtc._nvrtcProgram;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.IntPointer;
import org.bytedeco.javacpp.Loader;
import org.bytedeco.javacpp.LongPointer;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.PointerPointer;
import org.bytedeco.javacpp.SizeTPointer;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * {@link CudaApi} on one GPU through JavaCPP's CUDA presets: the runtime API for memory, streams and copies, NVRTC to
 * compile {@code kernels.cu} for the device's architecture (a CUBIN, so no PTX-version coupling to the driver), the
 * driver API to load and launch it, and cuBLASLt for GEMMs (bias and relu epilogues; FP32 compute unless
 * {@code kiln.cuda.tf32=true}). When cuBLASLt cannot be loaded (it ships with the CUDA toolkit, not with
 * {@code cuda-redist}) GEMMs run on Kiln's own tiled kernel instead.
 *
 * <p>Not run in this project's CI (no GPU there): its checks are {@code scripts/gpu-check.sh} on a GPU machine. What CI
 * does run is {@link #open}'s failure on a machine without the driver, which must be one clear error.
 */
final class JavaCppCudaApi implements CudaApi {
    private static final int BLOCK = 256;
    /** cuBLASLt workspace per stream: streams run GEMMs at once, and split-K algorithms must not share partial sums. */
    private static final long WORKSPACE_BYTES = 16L << 20;
    /** Plans kept per device before the cache is emptied (each new tail size of a batch makes one). */
    private static final int MAX_GEMM_PLANS = 64;

    private final int ordinal;
    private final String description;
    private final int maxBlocks;
    private final CUmod_st module = new CUmod_st();
    private final Map<String, CUfunc_st> functions = new ConcurrentHashMap<>();
    private final Map<Long, CUstream_st> streams = new ConcurrentHashMap<>();
    private final Map<Long, Long> workspaces = new ConcurrentHashMap<>();
    private final Map<ByteBuffer, Pointer> pinned = new IdentityHashMap<>();
    private final cublasLtContext lt;
    private final long workspace;
    private final int computeType;
    private final Map<GemmKey, GemmPlan> gemmPlans = new HashMap<>();
    private final ThreadLocal<Raw[]> scratch = ThreadLocal.withInitial(() -> new Raw[] {new Raw(), new Raw()});

    /** A pointer at any address (device addresses travel as longs). */
    private static final class Raw extends Pointer {
        Raw at(long address) {
            this.address = address;
            this.position = 0;
            return this;
        }
    }

    private JavaCppCudaApi(int ordinal) {
        this.ordinal = ordinal;
        int[] count = new int[1];
        check(cudart.cudaGetDeviceCount(count), "cudaGetDeviceCount");
        if (ordinal < 0 || ordinal >= count[0]) {
            throw KilnException.of(ErrorCode.BACKEND_UNAVAILABLE, "Device cuda:%d does not exist: CUDA sees %d GPU(s) in this process (CUDA_VISIBLE_DEVICES=%s)",
                    ordinal, count[0], System.getenv("CUDA_VISIBLE_DEVICES"));
        }
        bind();
        cudaDeviceProp prop = new cudaDeviceProp();
        check(cudart.cudaGetDeviceProperties(prop, ordinal), "cudaGetDeviceProperties");
        int major = prop.major();
        int minor = prop.minor();
        description = String.format("cuda:%d (%s, compute capability %d.%d, %,d MiB)", ordinal, prop.name().getString(), major, minor,
                prop.totalGlobalMem() >> 20);
        if (major < 8) {
            throw KilnException.of(ErrorCode.BACKEND_UNAVAILABLE, "%s: Kiln's cuda backend needs compute capability 8.0 or newer (Ampere, Ada, Hopper)",
                    description);
        }
        maxBlocks = Math.max(1, prop.multiProcessorCount() * 32);
        checkDriver(cudart.cuInit(0), "cuInit");
        check(cudart.cudaFree(null), "cudaFree(null) (making the primary context current)");
        byte[] cubin = compile(kernelSource(), major, minor, description);
        BytePointer image = new BytePointer(cubin);
        checkDriver(cudart.cuModuleLoadData(module, image), "cuModuleLoadData(kernels.cu)");
        computeType = Boolean.getBoolean("kiln.cuda.tf32") ? cublas.CUBLAS_COMPUTE_32F_FAST_TF32 : cublas.CUBLAS_COMPUTE_32F;
        cublasLtContext handle = null;
        long ws = 0;
        try {
            Loader.load(cublas.class);
            handle = new cublasLtContext();
            checkLt(cublas.cublasLtCreate(handle), "cublasLtCreate");
            ws = malloc(WORKSPACE_BYTES);
        } catch (Throwable t) {
            handle = null;
            System.err.println("Kiln cuda: cuBLASLt is not available (" + rootMessage(t) + "); GEMMs use Kiln's own kernel");
        }
        lt = handle;
        workspace = ws;
    }

    /**
     * Opens GPU {@code ordinal}, or fails with {@code BACKEND_UNAVAILABLE} saying which library or device is missing
     * (on a machine without the NVIDIA driver the CUDA runtime cannot even be loaded).
     */
    static JavaCppCudaApi open(int ordinal) {
        try {
            Loader.load(cudart.class);
            Loader.load(nvrtc.class);
        } catch (Throwable t) {
            throw new KilnException(ErrorCode.BACKEND_UNAVAILABLE, "Cannot open device cuda:" + ordinal + ": the CUDA libraries do not load ("
                    + rootMessage(t) + "). Kiln's cuda backend needs the NVIDIA driver (libcuda.so.1) and the CUDA runtime, NVRTC and "
                    + "cuBLASLt libraries of this build's CUDA major version (12; 13 for builds with -Pcuda13) on the library path; use "
                    + "device cpu where there is no GPU", t);
        }
        return new JavaCppCudaApi(ordinal);
    }

    static String rootMessage(Throwable t) {
        Throwable root = t;
        while (root.getCause() != null && root.getCause() != root) {
            root = root.getCause();
        }
        return root.getClass().getSimpleName() + ": " + root.getMessage();
    }

    static String kernelSource() {
        try (InputStream in = JavaCppCudaApi.class.getResourceAsStream("kernels.cu")) {
            if (in == null) {
                throw new IllegalStateException("kernels.cu is missing from the Kiln jar");
            }
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** NVRTC: kernels.cu to a CUBIN for {@code sm_<major><minor>}; a compile error carries NVRTC's log. */
    private static byte[] compile(String source, int major, int minor, String device) {
        _nvrtcProgram program = new _nvrtcProgram();
        checkNvrtc(nvrtc.nvrtcCreateProgram(program, new BytePointer(source), new BytePointer("kernels.cu"), 0, (PointerPointer) null,
                (PointerPointer) null), "nvrtcCreateProgram");
        try {
            PointerPointer options = new PointerPointer<>("--gpu-architecture=sm_" + major + minor, "--std=c++14");
            int status = nvrtc.nvrtcCompileProgram(program, 2, options);
            if (status != nvrtc.NVRTC_SUCCESS) {
                SizeTPointer logSize = new SizeTPointer(1);
                nvrtc.nvrtcGetProgramLogSize(program, logSize);
                BytePointer log = new BytePointer(logSize.get());
                nvrtc.nvrtcGetProgramLog(program, log);
                throw KilnException.of(ErrorCode.BACKEND_UNAVAILABLE, "%s: NVRTC could not compile kernels.cu for sm_%d%d: %s%n%s", device, major, minor,
                        nvrtc.nvrtcGetErrorString(status).getString(), log.getString());
            }
            SizeTPointer size = new SizeTPointer(1);
            checkNvrtc(nvrtc.nvrtcGetCUBINSize(program, size), "nvrtcGetCUBINSize");
            BytePointer cubin = new BytePointer(size.get());
            checkNvrtc(nvrtc.nvrtcGetCUBIN(program, cubin), "nvrtcGetCUBIN");
            byte[] out = new byte[(int) size.get()];
            cubin.get(out);
            return out;
        } finally {
            nvrtc.nvrtcDestroyProgram(program);
        }
    }

    private void bind() {
        check(cudart.cudaSetDevice(ordinal), "cudaSetDevice");
    }

    private void check(int status, String what) {
        if (status != cudart.cudaSuccess) {
            ErrorCode code = status == cudart.cudaErrorMemoryAllocation ? ErrorCode.DEVICE_OUT_OF_MEMORY : ErrorCode.BACKEND_UNAVAILABLE;
            throw KilnException.of(code, "cuda:%d: %s failed: %s (CUDA error %d)", ordinal, what, cudart.cudaGetErrorString(status).getString(), status);
        }
    }

    /** Driver API results (cu*) have their own error names. */
    private void checkDriver(int status, String what) {
        if (status != 0) {
            PointerPointer out = new PointerPointer<>(1);
            cudart.cuGetErrorString(status, out);
            String message = out.get(0) == null ? "unknown" : new BytePointer(out.get(0)).getString();
            throw KilnException.of(status == 2 ? ErrorCode.DEVICE_OUT_OF_MEMORY : ErrorCode.BACKEND_UNAVAILABLE,
                    "cuda:%d: %s failed: %s (CUDA driver error %d)", ordinal, what, message, status);
        }
    }

    private void checkLt(int status, String what) {
        if (status != cublas.CUBLAS_STATUS_SUCCESS) {
            throw KilnException.of(ErrorCode.BACKEND_UNAVAILABLE, "cuda:%d: %s failed: %s (cuBLAS status %d)", ordinal, what,
                    cublas.cublasLtGetStatusString(status).getString(), status);
        }
    }

    private static void checkNvrtc(int status, String what) {
        if (status != nvrtc.NVRTC_SUCCESS) {
            throw KilnException.of(ErrorCode.BACKEND_UNAVAILABLE, "%s failed: %s", what, nvrtc.nvrtcGetErrorString(status).getString());
        }
    }

    @Override
    public String describe() {
        return description + (lt != null ? ", cuBLASLt" : ", Kiln GEMM kernel");
    }

    @Override
    public long malloc(long bytes) {
        bind();
        Pointer p = new Pointer();
        int status = cudart.cudaMalloc(p, bytes);
        if (status == cudart.cudaErrorMemoryAllocation) {
            cudart.cudaGetLastError();
            throw KilnException.of(ErrorCode.DEVICE_OUT_OF_MEMORY, "%s: out of memory allocating %,d bytes", description, bytes);
        }
        check(status, "cudaMalloc(" + bytes + ")");
        return p.address();
    }

    @Override
    public void free(long address) {
        bind();
        check(cudart.cudaFree(new Raw().at(address)), "cudaFree");
    }

    @Override
    public synchronized ByteBuffer mallocHost(long bytes) {
        bind();
        Pointer p = new Pointer();
        int status = cudart.cudaMallocHost(p, bytes);
        if (status == cudart.cudaErrorMemoryAllocation) {
            cudart.cudaGetLastError();
            throw KilnException.of(ErrorCode.DEVICE_OUT_OF_MEMORY, "%s: cannot page-lock %,d bytes of host memory", description, bytes);
        }
        check(status, "cudaMallocHost(" + bytes + ")");
        ByteBuffer buffer = new BytePointer(p).capacity(bytes).asByteBuffer().order(ByteOrder.LITTLE_ENDIAN);
        pinned.put(buffer, p);
        return buffer;
    }

    @Override
    public synchronized void freeHost(ByteBuffer buffer) {
        Pointer p = pinned.remove(buffer);
        if (p == null) {
            throw new IllegalArgumentException("Not page-locked memory of this device");
        }
        check(cudart.cudaFreeHost(p), "cudaFreeHost");
    }

    @Override
    public long createStream() {
        bind();
        CUstream_st stream = new CUstream_st();
        check(cudart.cudaStreamCreateWithFlags(stream, cudart.cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
        if (lt != null) {
            try {
                workspaces.put(stream.address(), malloc(WORKSPACE_BYTES));
            } catch (RuntimeException e) {
                cudart.cudaStreamDestroy(stream);
                throw e;
            }
        }
        streams.put(stream.address(), stream);
        return stream.address();
    }

    @Override
    public void destroyStream(long stream) {
        bind();
        CUstream_st s = streams.remove(stream);
        if (s != null) {
            check(cudart.cudaStreamSynchronize(s), "cudaStreamSynchronize");
            Long ws = workspaces.remove(stream);
            if (ws != null) {
                free(ws);
            }
            check(cudart.cudaStreamDestroy(s), "cudaStreamDestroy");
        }
    }

    private CUstream_st stream(long id) {
        return id == 0 ? null : streams.get(id);
    }

    /** The address of a direct buffer: page-locked ones are known; others (bound Arrow buffers) are asked. */
    private long hostAddress(ByteBuffer buffer) {
        Pointer p;
        synchronized (this) {
            p = pinned.get(buffer);
        }
        return p != null ? p.address() : new Pointer(buffer).address();
    }

    @Override
    public void copyToDevice(long dst, ByteBuffer src, long srcOffset, long bytes, long stream) {
        bind();
        Raw[] p = scratch.get();
        check(cudart.cudaMemcpyAsync(p[0].at(dst), p[1].at(hostAddress(src) + srcOffset), bytes, cudart.cudaMemcpyHostToDevice, stream(stream)),
                "cudaMemcpyAsync host to device");
    }

    @Override
    public void copyToHost(ByteBuffer dst, long dstOffset, long src, long bytes, long stream) {
        bind();
        Raw[] p = scratch.get();
        check(cudart.cudaMemcpyAsync(p[0].at(hostAddress(dst) + dstOffset), p[1].at(src), bytes, cudart.cudaMemcpyDeviceToHost, stream(stream)),
                "cudaMemcpyAsync device to host");
    }

    @Override
    public void synchronize(long stream) {
        bind();
        check(cudart.cudaStreamSynchronize(stream(stream)), "cudaStreamSynchronize");
    }

    private CUfunc_st function(String name) {
        return functions.computeIfAbsent(name, n -> {
            CUfunc_st f = new CUfunc_st();
            checkDriver(cudart.cuModuleGetFunction(f, module, n), "cuModuleGetFunction(" + n + ")");
            return f;
        });
    }

    @Override
    public Launch prepare(String name, ArgKind... kinds) {
        CUfunc_st function = function(name);
        // One 8-byte cell per argument, and the array of their addresses cuLaunchKernel reads.
        BytePointer cells = new BytePointer(8L * Math.max(1, kinds.length));
        LongPointer addresses = new LongPointer(Math.max(1, kinds.length));
        for (int i = 0; i < kinds.length; i++) {
            addresses.put(i, cells.address() + 8L * i);
        }
        PointerPointer params = new PointerPointer(addresses);
        String what = "launch of " + name;
        return new Launch() {
            /** cuLaunchKernel reads the cells through this array: it lives as long as the launch. */
            private final LongPointer cellAddresses = addresses;

            @Override
            public void set(int index, long value) {
                if (kinds[index] == ArgKind.INT) {
                    cells.putInt(8L * index, (int) value);
                } else {
                    cells.putLong(8L * index, value);
                }
            }

            @Override
            public void setFloat(int index, float value) {
                cells.putFloat(8L * index, value);
            }

            @Override
            public void launch(long threads, long stream) {
                bind();
                long blocks = Math.min(maxBlocks, (threads + BLOCK - 1) / BLOCK);
                checkDriver(cudart.cuLaunchKernel(function, (int) blocks, 1, 1, BLOCK, 1, 1, 0, stream(stream), params, null), what);
            }
        };
    }

    private record GemmKey(boolean transB, boolean relu, boolean bias, long m, long n, long k, long count, long strideA, long strideB, long strideC,
                           int alignLtA, int alignLtB, int alignC) { }

    /** The largest power of two up to 256 dividing the address and the byte stride between matrices. */
    static int alignment(long address, long strideElements) {
        long bits = address | (strideElements == 0 ? 0 : 4 * strideElements) | 256;
        return (int) Long.lowestOneBit(bits);
    }

    /** cuBLASLt descriptors and the algorithm chosen for one GEMM shape, made on its first call. */
    private record GemmPlan(cublasLtMatmulDescOpaque_t desc, PointerPointer biasCell, cublasLtMatrixLayoutOpaque_t a, cublasLtMatrixLayoutOpaque_t b,
                            cublasLtMatrixLayoutOpaque_t c, cublasLtMatmulHeuristicResult_t algo) { }

    private static final FloatPointer ONE = new FloatPointer(1f);
    private static final FloatPointer ZERO = new FloatPointer(0f);

    @Override
    public void gemm(boolean transB, boolean relu, long a, long b, long bias, long c, long m, long n, long k, long count,
                     long strideA, long strideB, long strideC, long stream) {
        bind();
        if (lt == null) {
            fallbackGemm(transB, relu, a, b, bias, c, m, n, k, count, strideA, strideB, strideC, stream);
            return;
        }
        // cuBLASLt assumes 256-byte aligned operands unless told: arena values are 64-byte aligned and batch strides
        // may be 4, so each operand's alignment (address and stride) goes into the plan.
        GemmKey key = new GemmKey(transB, relu, bias != 0, m, n, k, count, strideA, strideB, strideC,
                alignment(b, strideB), alignment(a, strideA), alignment(c, strideC));
        GemmPlan plan;
        synchronized (gemmPlans) {
            plan = gemmPlans.get(key);
            if (plan == null) {
                if (gemmPlans.size() >= MAX_GEMM_PLANS) {
                    destroyPlans();
                }
                plan = newPlan(key);
                gemmPlans.put(key, plan);
            }
        }
        Long ws = workspaces.get(stream);
        long workspaceAddress = ws != null ? ws : workspace;
        // The bias pointer is an attribute of the shared descriptor: set it and queue the GEMM as one step.
        synchronized (plan) {
            if (bias != 0) {
                plan.biasCell().put(0, new Raw().at(bias));
                checkLt(cublas.cublasLtMatmulDescSetAttribute(plan.desc(), cublas.CUBLASLT_MATMUL_DESC_BIAS_POINTER, plan.biasCell(),
                        Loader.sizeof(Pointer.class)), "bias pointer");
            }
            Raw[] p = scratch.get();
            Raw cPointer = new Raw().at(c);
            // Row-major C = A op(B) is column-major C^T = op(B)^T A^T: cuBLASLt's A is our B, its B our A.
            checkLt(cublas.cublasLtMatmul(lt, plan.desc(), ONE, p[0].at(b), plan.a(), p[1].at(a), plan.b(), ZERO, cPointer, plan.c(), cPointer,
                    plan.c(), plan.algo().algo(), new Raw().at(workspaceAddress), WORKSPACE_BYTES, stream(stream)), "cublasLtMatmul");
        }
    }

    private GemmPlan newPlan(GemmKey key) {
        PointerPointer out = new PointerPointer<>(1);
        checkLt(cublas.cublasLtMatmulDescCreate(out, computeType, cudart.CUDA_R_32F), "cublasLtMatmulDescCreate");
        cublasLtMatmulDescOpaque_t desc = new cublasLtMatmulDescOpaque_t(out.get(0));
        setInt(desc, cublas.CUBLASLT_MATMUL_DESC_TRANSA, key.transB() ? cublas.CUBLAS_OP_T : cublas.CUBLAS_OP_N);
        setInt(desc, cublas.CUBLASLT_MATMUL_DESC_TRANSB, cublas.CUBLAS_OP_N);
        int epilogue = key.bias() ? (key.relu() ? cublas.CUBLASLT_EPILOGUE_RELU_BIAS : cublas.CUBLASLT_EPILOGUE_BIAS)
                : (key.relu() ? cublas.CUBLASLT_EPILOGUE_RELU : cublas.CUBLASLT_EPILOGUE_DEFAULT);
        setInt(desc, cublas.CUBLASLT_MATMUL_DESC_EPILOGUE, epilogue);
        // Column-major shapes: our B is [k, n] (ld k, transposed in) or [n, k] (ld n); our A is [k, m] (ld k); C is [n, m].
        cublasLtMatrixLayoutOpaque_t la = layout(out, key.transB() ? key.k() : key.n(), key.transB() ? key.n() : key.k(), key.transB() ? key.k() : key.n(),
                key.count(), key.strideB());
        cublasLtMatrixLayoutOpaque_t lb = layout(out, key.k(), key.m(), key.k(), key.count(), key.strideA());
        cublasLtMatrixLayoutOpaque_t lc = layout(out, key.n(), key.m(), key.n(), key.count(), key.strideC());
        checkLt(cublas.cublasLtMatmulPreferenceCreate(out), "cublasLtMatmulPreferenceCreate");
        cublasLtMatmulPreferenceOpaque_t pref = new cublasLtMatmulPreferenceOpaque_t(out.get(0));
        LongPointer ws = new LongPointer(1).put(WORKSPACE_BYTES);
        checkLt(cublas.cublasLtMatmulPreferenceSetAttribute(pref, cublas.CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, ws, 8), "workspace preference");
        int[][] aligns = {{cublas.CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, key.alignLtA()}, {cublas.CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, key.alignLtB()},
                {cublas.CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, key.alignC()}, {cublas.CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, key.alignC()}};
        for (int[] align : aligns) {
            checkLt(cublas.cublasLtMatmulPreferenceSetAttribute(pref, align[0], new IntPointer(1).put(align[1]), 4), "alignment preference");
        }
        cublasLtMatmulHeuristicResult_t result = new cublasLtMatmulHeuristicResult_t(1);
        int[] found = new int[1];
        checkLt(cublas.cublasLtMatmulAlgoGetHeuristic(lt, desc, la, lb, lc, lc, pref, 1, result, found), "cublasLtMatmulAlgoGetHeuristic");
        cublas.cublasLtMatmulPreferenceDestroy(pref);
        if (found[0] == 0) {
            throw KilnException.of(ErrorCode.BACKEND_UNAVAILABLE, "%s: cuBLASLt has no algorithm for %s", description, key);
        }
        return new GemmPlan(desc, new PointerPointer<>(1), la, lb, lc, result);
    }

    private void setInt(cublasLtMatmulDescOpaque_t desc, int attribute, int value) {
        checkLt(cublas.cublasLtMatmulDescSetAttribute(desc, attribute, new IntPointer(1).put(value), 4), "matmul attribute " + attribute);
    }

    private cublasLtMatrixLayoutOpaque_t layout(PointerPointer out, long rows, long cols, long ld, long count, long stride) {
        checkLt(cublas.cublasLtMatrixLayoutCreate(out, cudart.CUDA_R_32F, rows, cols, ld), "cublasLtMatrixLayoutCreate");
        cublasLtMatrixLayoutOpaque_t layout = new cublasLtMatrixLayoutOpaque_t(out.get(0));
        if (count > 1) {
            checkLt(cublas.cublasLtMatrixLayoutSetAttribute(layout, cublas.CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, new IntPointer(1).put((int) count), 4),
                    "batch count");
            checkLt(cublas.cublasLtMatrixLayoutSetAttribute(layout, cublas.CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, new LongPointer(1).put(stride), 8),
                    "batch stride");
        }
        return layout;
    }

    /** Kiln's GEMM kernel (64x64 tiles, 4x4 outputs per thread), for machines without cuBLASLt. */
    private void fallbackGemm(boolean transB, boolean relu, long a, long b, long bias, long c, long m, long n, long k, long count,
                              long strideA, long strideB, long strideC, long stream) {
        BytePointer cells = new BytePointer(8 * 12);
        long[] values = {a, b, bias, c};
        for (int i = 0; i < 4; i++) {
            cells.putLong(8L * i, values[i]);
        }
        cells.putInt(32, (int) m);
        cells.putInt(40, (int) n);
        cells.putInt(48, (int) k);
        cells.putInt(56, transB ? 1 : 0);
        cells.putLong(64, strideA);
        cells.putLong(72, strideB);
        cells.putLong(80, strideC);
        cells.putInt(88, relu ? 1 : 0);
        LongPointer addresses = new LongPointer(12);
        for (int i = 0; i < 12; i++) {
            addresses.put(i, cells.address() + 8L * i);
        }
        // 64x64 tiles of C: rows of tiles on grid x (up to 2^31 - 1), columns on y; matrices on z in slices of at most 65535.
        PointerPointer params = new PointerPointer(addresses);
        for (long z0 = 0; z0 < count; z0 += 65_535) {
            cells.putLong(0, a + 4 * z0 * strideA);
            cells.putLong(8, b + 4 * z0 * strideB);
            cells.putLong(24, c + 4 * z0 * strideC);
            checkDriver(cudart.cuLaunchKernel(function("kiln_gemm"), (int) ((m + 63) / 64), (int) ((n + 63) / 64), (int) Math.min(65_535, count - z0),
                    16, 16, 1, 0, stream(stream), params, null), "launch of kiln_gemm");
        }
        // cuLaunchKernel has copied the argument values; until then `cells` must stay reachable.
        java.lang.ref.Reference.reachabilityFence(cells);
    }

    private void destroyPlans() {
        for (GemmPlan plan : gemmPlans.values()) {
            cublas.cublasLtMatrixLayoutDestroy(plan.a());
            cublas.cublasLtMatrixLayoutDestroy(plan.b());
            cublas.cublasLtMatrixLayoutDestroy(plan.c());
            cublas.cublasLtMatmulDescDestroy(plan.desc());
        }
        gemmPlans.clear();
    }

    @Override
    public void close() {
        bind();
        synchronized (gemmPlans) {
            destroyPlans();
        }
        if (workspace != 0) {
            free(workspace);
        }
        if (lt != null) {
            cublas.cublasLtDestroy(lt);
        }
        cudart.cuModuleUnload(module);
    }
}
