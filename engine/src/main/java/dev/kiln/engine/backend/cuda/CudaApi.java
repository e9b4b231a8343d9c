package dev.kiln.engine.backend.cuda;

import java.nio.ByteBuffer;

/**
 * What the {@code cuda} backend needs from one GPU: device and pinned host memory, streams, asynchronous copies, the
 * launch of Kiln's kernels ({@code kernels.cu}) and GEMMs. {@link JavaCppCudaApi} implements it on the CUDA runtime,
 * driver API, NVRTC and cuBLASLt through JavaCPP's presets; the engine's tests implement it in plain Java, kernel for
 * kernel, so that everything above it (lowering, memory layout, staging, chunked streams) is tested without a GPU.
 *
 * <p>Device memory is named by 64-bit device addresses. Every call is asynchronous on its stream unless it says
 * otherwise; errors are {@link dev.kiln.engine.KilnException}s ({@code DEVICE_OUT_OF_MEMORY} when an allocation does
 * not fit, so that the batch can be halved).
 */
public interface CudaApi extends AutoCloseable {
    /** The GPU in words: name, compute capability, memory. */
    String describe();

    /** Allocates device memory (synchronous); never returns 0. */
    long malloc(long bytes);

    void free(long address);

    /** Page-locked host memory the device copies from and to at full bandwidth, as a little-endian direct buffer. */
    ByteBuffer mallocHost(long bytes);

    void freeHost(ByteBuffer buffer);

    long createStream();

    void destroyStream(long stream);

    /** Copies {@code bytes} from {@code src} (direct; pinned for full speed) at {@code srcOffset} to device memory. */
    void copyToDevice(long dst, ByteBuffer src, long srcOffset, long bytes, long stream);

    /** Copies {@code bytes} of device memory to {@code dst} (direct) at {@code dstOffset}. */
    void copyToHost(ByteBuffer dst, long dstOffset, long src, long bytes, long stream);

    /** Waits for everything queued on {@code stream}. */
    void synchronize(long stream);

    /** A launch of kernel {@code name} of {@code kernels.cu} with its own argument cells, reusable without allocating. */
    Launch prepare(String name, ArgKind... args);

    /**
     * Row-major {@code C[m, n] = A[m, k] op(B) + bias} followed by relu when {@code relu}, for {@code count} matrices
     * spaced by the strides (in elements; stride 0 shares a matrix). {@code op(B)} is {@code B[n, k]^T} when
     * {@code transB} (dense weights), else {@code B[k, n]}. {@code bias} is a device address of {@code n} floats or 0.
     */
    void gemm(boolean transB, boolean relu, long a, long b, long bias, long c, long m, long n, long k, long count,
              long strideA, long strideB, long strideC, long stream);

    /** Frees what the API holds itself (handles, modules, streams it made); the caller frees its own memory first. */
    @Override
    void close();

    /** The C type of one kernel argument. */
    enum ArgKind { POINTER, LONG, INT, FLOAT }

    /** A kernel launch whose arguments are set in place before each {@link #launch}. */
    interface Launch {
        void set(int index, long value);

        void setFloat(int index, float value);

        /** Launches over {@code threads} logical threads (grid-stride: the grid may be smaller) on {@code stream}. */
        void launch(long threads, long stream);
    }
}
