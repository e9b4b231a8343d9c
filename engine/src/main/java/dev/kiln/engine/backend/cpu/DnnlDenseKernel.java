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
import static org.bytedeco.dnnl.global.dnnl.dnnl_format_tag_any;
import static org.bytedeco.dnnl.global.dnnl.dnnl_matmul_primitive_desc_create;
import static org.bytedeco.dnnl.global.dnnl.dnnl_memory_desc_equal;
import static org.bytedeco.dnnl.global.dnnl.dnnl_memory_set_data_handle;
import static org.bytedeco.dnnl.global.dnnl.dnnl_primitive_desc_destroy;
import static org.bytedeco.dnnl.global.dnnl.dnnl_primitive_desc_query_md;
import static org.bytedeco.dnnl.global.dnnl.dnnl_query_weights_md;

/**
 * {@code activation(x W^T + b)} as one oneDNN matmul that adds the bias while each output tile is in registers,
 * then the activation as Kiln's vector epilogue ({@link Epilogue}). The relu stays in Kiln's epilogue on purpose:
 * oneDNN's relu post-op is {@code max(x, 0)} in an operand order that turns NaN into 0, and Kiln keeps PyTorch's
 * NaN propagation (tested); fusing it measured within the noise (BENCHMARKS.md). A single row goes through
 * OpenBLAS's sgemv ({@link BlasDenseKernel}), which is faster there.
 * <p>
 * Fixed weights (parameters, constants) are reordered once into the blocked layout oneDNN picks for them, shared by
 * every batch size's plan: given the plain layout, oneDNN's matmul copies them into that layout on every run (the seed
 * MLP at 1,024 rows: 3,256-3,328 µs plain, 3,176-3,183 µs packed, BENCHMARKS.md). The packed copy is the kernel's, so
 * each executor holds one beside the model's weights. Weights computed by the graph are read as they are.
 * <p>
 * The input may be rows that sit apart in memory (a strided slot: an input bound in place to rows of the caller's own
 * format); the matmul then reads them with that leading dimension, and the single-row path reads row 0 as it is.
 */
final class DnnlDenseKernel extends DnnlKernel {
    /** {@code -Dkiln.onednn.plainWeights=true}: oneDNN reads the weights as they are, copying them on every run. */
    private static final boolean PACK = !Boolean.getBoolean("kiln.onednn.plainWeights");
    private final int k;
    private final int n;
    /** Floats from one input row to the next: k for packed rows, more for rows bound in place (a strided slot). */
    private final int lda;
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
    private final boolean pack;
    /** The weights in oneDNN's chosen layout, and that layout: made by the first plan, shared by the later ones. */
    private dnnl_memory packed;
    private dnnl_memory_desc packedDesc;
    private final AddressPointer inAt = new AddressPointer(0);
    private final AddressPointer outAt = new AddressPointer(0);

    /** @param fixedWeights whether W (and b) stay the same for the kernel's life, so they may be packed once */
    DnnlDenseKernel(Node node, Slot[] inputs, Slot out, boolean fixedWeights) {
        this.x = inputs[0];
        Slot w = inputs[1];
        this.k = (int) w.size(1, 1);
        this.n = (int) w.size(0, 1);
        this.lda = x.strided() ? x.rowStride() : k;
        if (x.strided() && (x.rank() != 2 || lda < k)) {
            throw new IllegalArgumentException("A dense layer reads strided rows only as [batch, " + k + "] with a stride of at least " + k
                    + ", got " + x.type() + " with a stride of " + lda);
        }
        this.activation = DenseOp.activation(node.attributes());
        this.epilogue = Epilogue.create(activation);
        this.out = BlasDenseKernel.bytes(out);
        this.outByteOffset = out.offset() * 4;
        this.xAddress = address(x);
        this.outAddress = address(out);
        this.singleRow = new BlasDenseKernel(node, inputs, out);
        this.fusedGelu = activation == Activation.GELU && !Boolean.getBoolean("kiln.onednn.noGelu");
        this.pack = PACK && fixedWeights;
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
        runRows(0, rows);
    }

    /** Values per row read (the layer's inputs) and written (its outputs). */
    int inputWidth() {
        return k;
    }

    int outputWidth() {
        return n;
    }

    /**
     * Rows {@code first} to {@code first + rows - 1} of the input into the same rows of the output: the plan for that
     * many rows, its source and destination moved to those rows (a {@link DenseChainKernel}'s chunk, or the whole
     * batch from row 0), then the activation over them.
     */
    void runRows(long first, long rows) {
        Dnnl.applyThreads();
        Plan plan = plan(rows);
        int status = dnnl_memory_set_data_handle(plan.input, inAt.at(xAddress + 4 * first * lda));
        if (status == 0) {
            status = dnnl_memory_set_data_handle(plan.output, outAt.at(outAddress + 4 * first * n));
        }
        if (status != 0) {
            Dnnl.check(status, "moving a dense layer's matmul to rows " + first + " to " + (first + rows - 1));
        }
        submit(plan, "running a dense layer's matmul");
        await(plan, "running a dense layer's matmul");
        if (activation != Activation.NONE && !fusedGelu) {
            epilogue.apply(out, outByteOffset + (int) (4 * first * n), null, 0, (int) rows, n);
        }
    }

    @Override
    protected void build(Plan plan, long rows) {
        plan.description = String.format("dense [%d, %d] x [%d, %d]^T", rows, k, n, k);
        dnnl_memory_desc src = lda == k ? plan.desc(new long[] {rows, k}, dnnl_ab) : plan.stridedDesc(new long[] {rows, k}, new long[] {lda, 1});
        dnnl_memory_desc dst = plan.desc(new long[] {rows, n}, dnnl_ab);
        dnnl_primitive_desc pd = new dnnl_primitive_desc();
        dnnl_primitive_attr attr = fusedGelu ? plan.geluAttributes() : null;
        dnnl_memory_desc wanted = pack ? plan.desc(new long[] {k, n}, dnnl_format_tag_any) : weightsDesc;
        Dnnl.check(dnnl_matmul_primitive_desc_create(pd, Dnnl.engine(), src, wanted, biasDesc, dst, attr),
                String.format("creating a matmul for [%d, %d] x [%d, %d]", rows, k, k, n));
        dnnl_memory w;
        try {
            w = pack ? packedFor(plan, pd) : weights;
        } catch (Throwable e) {
            dnnl_primitive_desc_destroy(pd);
            throw e;
        }
        plan.create(pd);
        plan.input = plan.memory(src, xAddress);
        plan.output = plan.memory(dst, outAddress);
        plan.arguments(DNNL_ARG_SRC, plan.input, DNNL_ARG_WEIGHTS, w, DNNL_ARG_BIAS, bias, DNNL_ARG_DST, plan.output);
    }

    /**
     * The weights in the layout {@code pd} chose: the kernel's packed copy when an earlier plan chose the same layout
     * (the usual case: the layout depends on the weights' shape, not the batch), otherwise a new copy, the kernel's
     * if it is the first, else the plan's.
     */
    private dnnl_memory packedFor(Plan plan, dnnl_primitive_desc pd) {
        dnnl_memory_desc chosen = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
        if (packed != null) {
            return dnnl_memory_desc_equal(chosen, packedDesc) != 0 ? packed : plan.weightsFor(pd, weightsDesc, weights, stream);
        }
        packedDesc = shared.query(pd, dnnl_query_weights_md);
        packed = shared.weightsFor(pd, weightsDesc, weights, stream);
        return packed;
    }
}
