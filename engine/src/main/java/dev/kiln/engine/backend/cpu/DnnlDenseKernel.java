package dev.kiln.engine.backend.cpu;

import dev.kiln.engine.backend.Slot;
import dev.kiln.engine.ir.Node;
import dev.kiln.engine.ops.Activation;
import dev.kiln.engine.ops.DenseOp;
import org.bytedeco.dnnl.dnnl_memory;
import org.bytedeco.dnnl.dnnl_memory_desc;
import org.bytedeco.dnnl.dnnl_primitive_attr;
import org.bytedeco.dnnl.dnnl_primitive_desc;

import java.nio.ByteBuffer;

import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_BIAS;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DST;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_SRC;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_WEIGHTS;
import static org.bytedeco.dnnl.global.dnnl.dnnl_ab;
import static org.bytedeco.dnnl.global.dnnl.dnnl_ba;
import static org.bytedeco.dnnl.global.dnnl.dnnl_matmul_primitive_desc_create;

/**
 * {@code activation(x W^T + b)} as one oneDNN matmul that adds the bias while each output tile is in registers,
 * then the activation as Kiln's vector epilogue ({@link Epilogue}). The relu stays in Kiln's epilogue on purpose:
 * oneDNN's relu post-op is {@code max(x, 0)} in an operand order that turns NaN into 0, and Kiln keeps PyTorch's
 * NaN propagation (tested); fusing it measured within the noise (BENCHMARKS.md). A single row goes through
 * OpenBLAS's sgemv ({@link BlasDenseKernel}), which is faster there.
 */
final class DnnlDenseKernel extends DnnlKernel {
    private final int k;
    private final int n;
    private final Slot x;
    private final long xAddress;
    private final long outAddress;
    private final Activation activation;
    private final Epilogue epilogue;
    private final ByteBuffer out;
    private final int outByteOffset;
    private final BlasDenseKernel singleRow;
    /** GELU runs as oneDNN's exact-erf GELU post-op (in registers); relu and the others in Kiln's epilogue. */
    private final boolean fusedGelu;
    private final dnnl_memory_desc weightsDesc;
    private final dnnl_memory weights;
    private final dnnl_memory_desc biasDesc;
    private final dnnl_memory bias;

    DnnlDenseKernel(Node node, Slot[] inputs, Slot out) {
        this.x = inputs[0];
        Slot w = inputs[1];
        this.k = (int) w.size(1, 1);
        this.n = (int) w.size(0, 1);
        this.activation = DenseOp.activation(node.attributes());
        this.epilogue = Epilogue.create(activation);
        this.out = BlasDenseKernel.bytes(out);
        this.outByteOffset = out.offset() * 4;
        this.xAddress = address(x);
        this.outAddress = address(out);
        this.singleRow = new BlasDenseKernel(node, inputs, out);
        this.fusedGelu = activation == Activation.GELU && !Boolean.getBoolean("kiln.onednn.noGelu");
        try {
            // W is [n, k] row-major: as the matmul's [k, n] weights it is the column-major ("ba") layout.
            this.weightsDesc = shared.desc(new long[] {k, n}, dnnl_ba);
            this.weights = shared.memory(weightsDesc, address(w));
            this.biasDesc = inputs.length > 2 ? shared.desc(new long[] {1, n}, dnnl_ab) : null;
            this.bias = inputs.length > 2 ? shared.memory(biasDesc, address(inputs[2])) : null;
        } catch (Throwable e) {
            close();
            throw e;
        }
    }

    @Override
    public void run(long batch) {
        int rows = k == 0 ? 0 : x.elementCount(batch) / k;
        if (rows == 0) {
            return;
        }
        if (rows == 1) {
            singleRow.run(batch);
            return;
        }
        execute(rows, "running a dense layer's matmul");
        if (activation != Activation.NONE && !fusedGelu) {
            epilogue.apply(out, outByteOffset, null, 0, rows, n);
        }
    }

    @Override
    protected void build(Plan plan, long rows) {
        plan.description = String.format("dense [%d, %d] x [%d, %d]^T", rows, k, n, k);
        dnnl_memory_desc src = plan.desc(new long[] {rows, k}, dnnl_ab);
        dnnl_memory_desc dst = plan.desc(new long[] {rows, n}, dnnl_ab);
        dnnl_primitive_desc pd = new dnnl_primitive_desc();
        dnnl_primitive_attr attr = fusedGelu ? plan.geluAttributes() : null;
        Dnnl.check(dnnl_matmul_primitive_desc_create(pd, Dnnl.engine(), src, weightsDesc, biasDesc, dst, attr),
                String.format("creating a matmul for [%d, %d] x [%d, %d]", rows, k, k, n));
        plan.create(pd);
        plan.arguments(DNNL_ARG_SRC, plan.memory(src, xAddress), DNNL_ARG_WEIGHTS, weights, DNNL_ARG_BIAS, bias,
                DNNL_ARG_DST, plan.memory(dst, outAddress));
    }
}
