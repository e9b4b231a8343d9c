package dev.kiln.engine.backend.cpu;

import dev.kiln.engine.backend.Backend;
import dev.kiln.engine.backend.Kernel;
import dev.kiln.engine.backend.Slot;
import dev.kiln.engine.exec.CompiledModel;
import dev.kiln.engine.ir.Graph;
import dev.kiln.engine.ir.Node;
import dev.kiln.engine.ir.Value;
import dev.kiln.engine.ops.OpRegistry;
import org.bytedeco.javacpp.Pointer;
import org.nd4j.linalg.factory.Nd4j;

/**
 * The CPU backend: weights and activations in off-heap memory (JavaCPP); dense layers through oneDNN's matmul with the
 * bias fused ({@link Dnnl}; OpenBLAS where oneDNN does not load, and for single rows), matmuls and
 * convolutions through OpenBLAS (the library ND4J bundles), every other op through its reference kernel.
 */
public final class CpuBackend implements Backend {
    public static final CpuBackend INSTANCE = new CpuBackend();

    private CpuBackend() {
    }

    /** Whether {@code value} is a parameter or constant, or a view of one: fixed for an executor's life. */
    static boolean isFixed(Graph graph, Value value) {
        Node producer = graph.producer(value);
        while (producer != null && OpRegistry.get(producer.op()).aliasesInput()) {
            producer = graph.producer(producer.input(0));
        }
        return producer != null && (producer.op().equals(OpRegistry.PARAMETER) || producer.op().equals(OpRegistry.CONSTANT));
    }

    @Override
    public String name() {
        return "cpu";
    }

    @Override
    public LoadedModel load(CompiledModel model) {
        return new CpuLoadedModel(model);
    }

    /**
     * The specialised kernel for {@code node}, or null to use the op's reference kernel. {@code fixedWeights}: every
     * input after the first is a parameter or constant (or a view of one), so a kernel may copy them once into the
     * layout its library wants (oneDNN's blocked weights) instead of reading them on every run.
     */
    static Kernel specialised(Node node, Slot[] inputs, Slot[] outputs, boolean fixedWeights) {
        switch (node.op()) {
            case OpRegistry.DENSE:
                return Dnnl.enabled() ? new DnnlDenseKernel(node, inputs, outputs[0], fixedWeights) : new BlasDenseKernel(node, inputs, outputs[0]);
            case OpRegistry.MATMUL:
                return new BlasMatMulKernel(inputs[0], inputs[1], outputs[0]);
            case OpRegistry.CONV2D:
                return fixedWeights && DnnlConvKernel.suits(inputs, node.attributes()) ? new DnnlConvKernel(inputs, outputs[0], node.attributes())
                        : new BlasConvKernel(inputs, outputs[0], node.attributes());
            case OpRegistry.MAX_POOL2D: {
                Kernel onednn = DnnlMaxPoolKernel.create(inputs[0], outputs[0], node.attributes());
                return onednn != null ? onednn : new PoolKernel(node.op(), inputs[0], outputs[0], node.attributes());
            }
            case OpRegistry.AVG_POOL2D:
                return new PoolKernel(node.op(), inputs[0], outputs[0], node.attributes());
            case OpRegistry.LAYER_NORM:
                return RowKernels.layerNorm(inputs[0], inputs[1], inputs[2], outputs[0], node.attributes());
            case OpRegistry.SOFTMAX: {
                Kernel onednn = DnnlSoftmaxKernel.create(inputs[0], outputs[0], node.attributes());
                return onednn != null ? onednn : RowKernels.softmax(inputs[0], outputs[0], node.attributes());
            }
            case OpRegistry.SPLIT:
                return RowKernels.split(inputs[0], outputs, node.attributes());
            case OpRegistry.TRANSPOSE:
                return RowKernels.transpose(inputs[0], outputs[0], node.attributes());
            case OpRegistry.REDUCE_MEAN:
            case OpRegistry.REDUCE_SUM:
                return ElementwiseKernels.contiguousReduce(node.op(), inputs[0], outputs[0], node.attributes());
            case OpRegistry.ADD:
            case OpRegistry.SUB:
            case OpRegistry.MUL:
            case OpRegistry.DIV:
                return ElementwiseKernels.binary(node.op(), inputs[0], inputs[1], outputs[0]);
            default:
                return inputs.length == 1 && outputs.length == 1 ? ElementwiseKernels.unary(node.op(), inputs[0], outputs[0]) : null;
        }
    }

    /** Sets the number of threads one BLAS or oneDNN call may use (process-wide in OpenBLAS; per calling thread in oneDNN's OpenMP). */
    public static void setBlasThreads(int threads) {
        Nd4j.factory().blas().setMaxThreads(Math.max(1, threads));
        Dnnl.setThreads(threads);
    }

    /** Which library runs dense layers in this JVM ("oneDNN 3.8.1", or "OpenBLAS (...)" saying why). */
    public static String gemmLibrary() {
        return Dnnl.description();
    }

    public static int blasThreads() {
        return Nd4j.factory().blas().getMaxThreads();
    }

    /** Off-heap bytes allocated through JavaCPP in this JVM (ND4J's arrays and Kiln's buffers). */
    public static long offHeapBytes() {
        return Pointer.totalBytes();
    }
}
