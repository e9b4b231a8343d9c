package dev.kiln.spark;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;
import dev.kiln.engine.exec.Executor;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.vector.Float4Vector;
import org.apache.arrow.vector.complex.FixedSizeListVector;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.apache.arrow.vector.types.pojo.FieldType;
import org.apache.spark.TaskContext;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.catalyst.expressions.GenericInternalRow;
import org.apache.spark.sql.catalyst.expressions.UnsafeProjection;
import org.apache.spark.sql.catalyst.expressions.UnsafeRow;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.unsafe.types.UTF8String;

import java.nio.FloatBuffer;
import java.util.Iterator;
import java.util.NoSuchElementException;

/**
 * Scores one partition: rows are gathered N at a time into Arrow batches (one fixed-size-list vector per graph input,
 * filled straight from Spark's internal rows), the executor reads those vectors in place, and each input row comes
 * back as an {@link UnsafeRow} of the output schema (its columns, then its predictions), in order: the input row's
 * bytes are copied once, into the output row ({@link OutputRows}), so no projection is needed after this. Rows with
 * bad input fail the task or get null predictions and an error message, as configured; the output has exactly one
 * row per input row.
 * <p>
 * Resources: a child allocator of the JVM's Arrow root per task and an executor borrowed from the JVM's model cache,
 * released at the end of the partition or by the task-completion listener, whichever comes first (idempotent).
 */
final class PartitionScorer implements Iterator<InternalRow>, AutoCloseable {
    private static final RootAllocator ROOT = new RootAllocator(Long.MAX_VALUE);
    /** {@code -Dkiln.spark.deferColumns=false}: output rows copy every input byte when stored (the A/B switch). */
    private static final boolean DEFER = !"false".equals(System.getProperty("kiln.spark.deferColumns"));
    /** {@code -Dkiln.spark.inPlaceRows=false}: the batch is an Arrow batch, not the output rows (the A/B switch). */
    private static final boolean IN_PLACE = !"false".equals(System.getProperty("kiln.spark.inPlaceRows"));

    private final ScoringPlan plan;
    private final Iterator<InternalRow> input;
    private final int partition;
    private final int batchSize;
    private final ExecutorModels.Lease lease;
    private final Executor executor;
    private final BufferAllocator allocator;
    private final FixedSizeListVector[] vectors;
    private final long[] addresses;
    private final java.nio.ByteBuffer[] views;
    private final InternalRow[] rows;
    private final int[] slots;
    private final String[] reasons;
    private final ScoredRows out;
    /** The public-API path's form: rows as plain values, no UnsafeRow layout (see {@link GenericRows}). */
    private final boolean generic;
    private final float[][] scratch;
    private final boolean errorColumn;
    /**
     * Per deferred column (an {@code array<float>} input copied verbatim into the batch): its batch's address and bytes
     * per row, and where the row being handed out has it.
     */
    private final long[] deferredBatch;
    private final long[] deferredRowBytes;
    private final long[] sources;
    /**
     * In place (null otherwise): the output rows of a batch, {@link #rowStride} bytes apart, each input's values at
     * {@link #valueOffsets} in its row, which is where the executor reads them.
     */
    private final org.apache.arrow.memory.ArrowBuf rowsInPlace;
    private final long rowsAddress;
    private final java.nio.ByteBuffer rowsView;
    private final int rowStride;
    private final int[] valueOffsets;
    /**
     * The thread that scores, the one that made the scorer (the task's: {@code mapPartitions} makes it when the task
     * starts): a row handed to another thread is copied, as it may outlive the block.
     */
    private final Thread owner;
    /** For input rows that are not UnsafeRows, and for rows without predictions: made when first needed. */
    private UnsafeProjection toUnsafe;
    private UnsafeProjection toOutput;
    private long rowsBefore;
    private int count;
    private int cursor;
    private volatile boolean closed;
    /** In place, after the last batch: the executor is back in the pool, the block stays until {@link #close}. */
    private boolean inputDone;

    PartitionScorer(ScoringPlan plan, Iterator<InternalRow> input, TaskContext task) {
        this(plan, input, task, false);
    }

    /**
     * @param generic true for the public-API path: input rows are read through their getters only and output rows are
     *                {@link GenericRows} (no UnsafeRow is built or laid out); false for Spark's internal rows
     */
    PartitionScorer(ScoringPlan plan, Iterator<InternalRow> input, TaskContext task, boolean generic) {
        this.plan = plan;
        this.generic = generic;
        this.input = input;
        this.partition = task == null ? -1 : task.partitionId();
        this.batchSize = plan.batchSize();
        java.util.List<Device> devices = Device.selectAll(plan.device(), task == null ? null : task.resourcesJMap());
        ExecutorModels.Lease acquired = ExecutorModels.acquire(plan.model(), devices, batchSize);
        // A pooled executor may hold more rows than this task's batches; the bound memory must cover all of them.
        int rowsCapacity = (int) acquired.executor().capacity();
        this.errorColumn = !plan.failOnBadRow();
        // Float arrays copied verbatim into the batch are not copied into the output rows as well: each output row
        // reads them back from the batch when it is handed out (OutputRows, "deferred columns"), or, in place, the
        // batch is the output rows themselves.
        java.util.List<Integer> ordinals = new java.util.ArrayList<>();
        java.util.List<Integer> deferredInputs = new java.util.ArrayList<>();
        for (int i = 0; i < plan.inputs().size() && DEFER && !generic; i++) {
            InputAdapter adapter = plan.inputs().get(i);
            if (adapter.copiesVerbatim() && !ordinals.contains(adapter.ordinals()[0])) {
                ordinals.add(adapter.ordinals()[0]);
                deferredInputs.add(i);
            }
        }
        OutputRows unsafeRows = null;
        ScoredRows rowsForm = null;
        BufferAllocator child = null;
        org.apache.arrow.memory.ArrowBuf inPlace = null;
        this.vectors = new FixedSizeListVector[plan.inputs().size()];
        this.addresses = new long[vectors.length];
        this.views = new java.nio.ByteBuffer[vectors.length];
        int[] valueOffsets = null;
        int stride = 0;
        try {
            unsafeRows = generic ? null : new OutputRows(plan.inputSchema(), plan.outputs().stream().map(OutputColumn::storedWidth).toList(),
                    errorColumn, batchSize, ordinals.stream().mapToInt(Integer::intValue).toArray(),
                    deferredInputs.stream().mapToInt(i -> plan.inputs().get(i).width()).toArray());
            rowsForm = generic ? new GenericRows(plan.inputSchema(), plan.outputs().size(), errorColumn, batchSize) : unsafeRows;
            child = ROOT.newChildAllocator("kiln-task-" + (task == null ? "driver" : task.taskAttemptId()), 0, Long.MAX_VALUE);
            // In place: every input is an array<float> copied verbatim, and the output row's layout puts each at the
            // same offset in every row: the batch is then the output rows themselves, a fixed stride apart, and the
            // executor reads each input's rows where they are (when it can: else the Arrow batch below).
            boolean screened = plan.inputs().stream().allMatch(InputAdapter::screensNonFinite);
            valueOffsets = IN_PLACE && unsafeRows != null && screened && deferredInputs.size() == vectors.length && vectors.length > 0
                    ? unsafeRows.fixedValueOffsets() : null;
            // A block that int offsets cannot address takes the Arrow batch.
            if (valueOffsets != null && (long) rowsCapacity * unsafeRows.inPlaceRowBytes() > Integer.MAX_VALUE) {
                valueOffsets = null;
            }
            if (valueOffsets != null) {
                stride = unsafeRows.inPlaceRowBytes();
                inPlace = child.buffer((long) rowsCapacity * stride);
                boolean bound = true;
                for (int i = 0; i < vectors.length && bound; i++) {
                    int width = plan.inputs().get(i).width();
                    java.nio.ByteBuffer rowsOfInput = inPlace.nioBuffer(valueOffsets[i], (rowsCapacity - 1) * stride + 4 * width).order(java.nio.ByteOrder.LITTLE_ENDIAN);
                    bound = acquired.executor().bindInputRows(i, rowsOfInput, stride / 4);
                }
                if (!bound) {
                    acquired.executor().unbindInputs();
                    inPlace.close();
                    inPlace = null;
                    valueOffsets = null;
                }
            }
            for (int i = 0; i < vectors.length && inPlace == null; i++) {
                int width = plan.inputs().get(i).width();
                FixedSizeListVector vector = FixedSizeListVector.empty("input" + i, width, child);
                vectors[i] = vector;
                vector.addOrGetVector(FieldType.notNullable(new ArrowType.FloatingPoint(org.apache.arrow.vector.types.FloatingPointPrecision.SINGLE)));
                vector.setInitialCapacity(rowsCapacity);
                vector.allocateNew();
                Float4Vector values = (Float4Vector) vector.getDataVector();
                values.allocateNew(rowsCapacity * width);
                addresses[i] = values.getDataBufferAddress();
                // Zero copy: the executor reads this input straight from the Arrow vector's data buffer.
                views[i] = values.getDataBuffer().nioBuffer(0, rowsCapacity * width * 4).order(java.nio.ByteOrder.LITTLE_ENDIAN);
                acquired.executor().bindInput(i, views[i]);
            }
        } catch (RuntimeException e) {
            for (FixedSizeListVector vector : vectors) {
                if (vector != null) {
                    vector.close();
                }
            }
            if (inPlace != null) {
                inPlace.close();
            }
            acquired.close();
            if (child != null) {
                child.close();
            }
            throw e;
        }
        this.out = rowsForm;
        this.lease = acquired;
        this.executor = acquired.executor();
        this.allocator = child;
        this.rowsInPlace = inPlace;
        this.rowsAddress = inPlace == null ? 0 : inPlace.memoryAddress();
        this.rowsView = inPlace == null ? null : inPlace.nioBuffer(0, (int) inPlace.capacity()).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        this.rowStride = stride;
        this.valueOffsets = valueOffsets;
        this.owner = Thread.currentThread();
        this.rows = new InternalRow[batchSize];
        this.slots = new int[batchSize];
        this.reasons = new String[batchSize];
        this.deferredBatch = inPlace != null ? new long[0] : deferredInputs.stream().mapToLong(i -> addresses[i]).toArray();
        this.deferredRowBytes = inPlace != null ? new long[0] : deferredInputs.stream().mapToLong(i -> 4L * plan.inputs().get(i).width()).toArray();
        this.sources = new long[deferredBatch.length];
        this.scratch = new float[plan.outputs().size()][];
        for (int o = 0; o < scratch.length; o++) {
            scratch[o] = new float[plan.outputs().get(o).width()];
        }
        if (task != null) {
            task.addTaskCompletionListener((org.apache.spark.util.TaskCompletionListener) context -> close());
        }
    }

    @Override
    public boolean hasNext() {
        if (closed || inputDone) {
            return false;
        }
        if (cursor < count) {
            return true;
        }
        if (!input.hasNext()) {
            if (rowsInPlace == null) {
                close();
            } else {
                // The last batch's rows are the block's memory, and the consumer may still hold the last one: the
                // executor goes back to the pool now, the block when the partition is closed (the task-completion
                // listener, or the caller's close).
                inputDone = true;
                lease.close();
            }
            return false;
        }
        scoreNextBatch();
        return count > 0;
    }

    /** Synchronized with {@link #close}: a completion listener on another thread waits for the batch to finish. */
    private synchronized void scoreNextBatch() {
        if (closed) {
            throw KilnException.of(ErrorCode.INVALID_ARGUMENT, "The partition scorer was closed (task completed) while reading input");
        }
        long start = System.nanoTime();
        rowsBefore += count;
        count = 0;
        cursor = 0;
        int valid = 0;
        out.clear();
        while (count < batchSize && input.hasNext()) {
            // The input row is Spark's, valid until the next input.next(): read into the batch, then stored.
            InternalRow row = generic ? input.next() : unsafe(input.next());
            String reason = null;
            for (int i = 0; i < addresses.length && reason == null; i++) {
                InputAdapter adapter = plan.inputs().get(i);
                reason = rowsInPlace != null
                        ? adapter.write(row, rowsAddress + (long) valid * rowStride + valueOffsets[i], rowsView, valid * rowStride + valueOffsets[i])
                        : adapter.write(row, addresses[i] + (long) valid * adapter.width() * 4, views[i], valid * adapter.width() * 4);
                if (reason != null) {
                    reason = "Column '" + adapter.columns() + "' " + where(row, rowsBefore + count) + ": " + reason;
                }
            }
            if (reason != null && plan.failOnBadRow()) {
                // An earlier row of this batch may hold a NaN the batch screen has not looked at yet: that row is the
                // first bad one, and the screen fails the task naming it.
                screenNonFinite(valid);
                throw new KilnException(ErrorCode.BAD_INPUT, reason + " (set onError to 'null' to score the other rows)");
            }
            if (reason == null && rowsInPlace != null) {
                // The row around its values, in its slot of the batch; a row that does not fit is stored as usual
                // (its values stay in the slot for the executor).
                if (!((OutputRows) out).addInPlace(row, count, rowsAddress + (long) valid * rowStride, rowStride, valueOffsets)) {
                    out.add(row, count);
                }
            } else if (reason == null && deferredBatch.length > 0) {
                out.addDeferred(row, count);
            } else {
                out.add(row, count);
            }
            rows[count] = null;
            slots[count] = reason == null ? valid++ : -1;
            reasons[count] = reason;
            count++;
        }
        valid = screenNonFinite(valid);
        for (FixedSizeListVector vector : vectors) {
            if (vector != null) {
                vector.setValueCount(valid);
            }
        }
        long converted = System.nanoTime();
        if (valid > 0) {
            executor.run(valid);
        }
        long computed = System.nanoTime();
        for (int o = 0; o < scratch.length && valid > 0; o++) {
            OutputColumn column = plan.outputs().get(o);
            FloatBuffer buffer = executor.outputBuffer(column.graphOutput());
            int offset = executor.outputOffset(column.graphOutput());
            for (int r = 0; r < count; r++) {
                int slot = slots[r];
                if (slot >= 0) {
                    column.write(buffer, offset + slot * column.width(), scratch[o], out, r, o);
                }
            }
        }
        for (int r = 0; r < count && valid < count; r++) {
            if (slots[r] < 0) {
                // Refused while reading (stored whole), or by the screen (taken out of the batch as a whole row).
                rows[r] = withoutPredictions(rows[r] != null ? rows[r] : out.row(r), reasons[r]);
            }
        }
        long done = System.nanoTime();
        plan.metrics().add(count, count - valid, converted - start + done - computed, computed - converted);
    }

    /**
     * Finds NaN and infinite inputs in the batch in one vectorized pass per input. A bad row fails the task, or is
     * taken out of the batch (later rows move down one slot) and gets null predictions. Returns the rows left.
     */
    private int screenNonFinite(int valid) {
        for (int i = 0; i < views.length; i++) {
            InputAdapter adapter = plan.inputs().get(i);
            if (adapter.screensNonFinite()) {
                continue;
            }
            int width = adapter.width();
            int from = 0;
            while (from < valid) {
                int k = dev.kiln.engine.backend.cpu.FiniteCheck.firstNonFinite(views[i], from * width * 4, (valid - from) * width);
                if (k < 0) {
                    break;
                }
                int slot = from + k / width;
                int index = k % width;
                int r = 0;
                while (slots[r] != slot) {
                    r++;
                }
                // The whole row, before its slot of the batch is reused: it leaves with null predictions.
                InternalRow whole = out.materialize(r, sources(slot));
                rows[r] = whole;
                String reason = "Column '" + adapter.columns() + "' " + where(whole, rowsBefore + r) + ": value at index " + index
                        + " is " + views[i].getFloat((slot * width + index) * 4);
                if (plan.failOnBadRow()) {
                    throw new KilnException(ErrorCode.BAD_INPUT, reason + " (set onError to 'null' to score the other rows)");
                }
                reasons[r] = reason;
                slots[r] = -1;
                for (int later = r + 1; later < count; later++) {
                    if (slots[later] > slot) {
                        slots[later]--;
                    }
                }
                for (int j = 0; j < views.length; j++) {
                    long w = plan.inputs().get(j).width() * 4L;
                    for (int s2 = slot; s2 < valid - 1; s2++) {
                        org.apache.spark.unsafe.Platform.copyMemory(null, addresses[j] + (s2 + 1) * w, null, addresses[j] + s2 * w, w);
                    }
                }
                valid--;
                from = slot;
            }
        }
        return valid;
    }

    private UnsafeRow unsafe(InternalRow row) {
        if (row instanceof UnsafeRow unsafe) {
            return unsafe;
        }
        if (toUnsafe == null) {
            toUnsafe = UnsafeProjection.create(plan.inputSchema());
        }
        return toUnsafe.apply(row);
    }

    /** A row that could not be scored (onError=null): its columns, null predictions and the reason. */
    private InternalRow withoutPredictions(InternalRow built, String reason) {
        StructType schema = plan.outputSchema();
        GenericInternalRow values = new GenericInternalRow(schema.size());
        for (int i = 0; i < out.inputFields(); i++) {
            if (!built.isNullAt(i)) {
                values.update(i, built.get(i, schema.fields()[i].dataType()));
            }
        }
        if (errorColumn) {
            values.update(schema.size() - 1, UTF8String.fromString(reason));
        }
        if (generic) {
            return values;
        }
        if (toOutput == null) {
            toOutput = UnsafeProjection.create(schema);
        }
        return toOutput.apply(values).copy();
    }

    /**
     * A key value as a user wrote it: Spark keeps a date as days since 1970 and a timestamp as microseconds, which a
     * message would otherwise show as bare numbers. (The public-Row path hands over the external values themselves.)
     */
    static Object readable(Object value, org.apache.spark.sql.types.DataType type) {
        if (value instanceof Integer days && type instanceof org.apache.spark.sql.types.DateType) {
            return java.time.LocalDate.ofEpochDay(days);
        }
        if (value instanceof Long micros && type instanceof org.apache.spark.sql.types.TimestampType) {
            java.sql.Timestamp at = new java.sql.Timestamp(Math.floorDiv(micros, 1000L));
            at.setNanos((int) Math.floorMod(micros, 1_000_000L) * 1000);
            return at;
        }
        if (value instanceof Long micros && type instanceof org.apache.spark.sql.types.TimestampNTZType) {
            return java.time.LocalDateTime.ofEpochSecond(Math.floorDiv(micros, 1_000_000L), (int) Math.floorMod(micros, 1_000_000L) * 1000,
                    java.time.ZoneOffset.UTC);
        }
        if (value instanceof byte[] bytes) {
            return java.util.Arrays.toString(bytes);
        }
        return value;
    }

    private String where(InternalRow row, long offset) {
        if (plan.keyOrdinal() >= 0) {
            Object key = row.isNullAt(plan.keyOrdinal()) ? "null" : readable(row.get(plan.keyOrdinal(), plan.keyType()), plan.keyType());
            return "row with " + plan.keyColumn() + "=" + key;
        }
        return "row " + offset + " of partition " + partition;
    }

    @Override
    public InternalRow next() {
        if (!hasNext()) {
            throw new NoSuchElementException(closed ? "the partition scorer is closed" : "no more rows");
        }
        int r = cursor++;
        InternalRow row = rows[r];
        if (row != null) {
            rows[r] = null;
            return row;
        }
        if (out.isDeferred(r)) {
            return emit(r);
        }
        return rowsInPlace != null && Thread.currentThread() != owner ? copyOf(r) : out.row(r);
    }

    /**
     * Row {@code r} copied, for a consumer on another thread than the task's: a row in place is the batch's off-heap
     * memory, which {@link #close} (the task-completion listener) may free while that thread still reads it.
     */
    private synchronized InternalRow copyOf(int r) {
        if (closed) {
            throw KilnException.of(ErrorCode.INVALID_ARGUMENT, "The partition scorer was closed (task completed) while its rows were being read");
        }
        return ((UnsafeRow) out.row(r)).copy();
    }

    /**
     * Assembles output row {@code r}, reading its deferred features from the Arrow batch: synchronized with
     * {@link #close}, which frees that batch, for a consumer on another thread than the task's (a Python runner's
     * writer thread reads its input that way) racing the task-completion listener.
     */
    private synchronized InternalRow emit(int r) {
        if (closed) {
            throw KilnException.of(ErrorCode.INVALID_ARGUMENT, "The partition scorer was closed (task completed) while its rows were being read");
        }
        return out.emit(r, sources(slots[r]));
    }

    /** Where the deferred columns of the row in batch slot {@code slot} are. */
    private long[] sources(int slot) {
        for (int j = 0; j < deferredBatch.length; j++) {
            sources[j] = deferredBatch[j] + slot * deferredRowBytes[j];
        }
        return sources;
    }

    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        for (FixedSizeListVector vector : vectors) {
            if (vector != null) {
                vector.close();
            }
        }
        if (rowsInPlace != null) {
            rowsInPlace.close();
        }
        lease.close();
        allocator.close();
    }

    /** Whether this partition's batch is its output rows, read by the executor in place (for tests). */
    boolean rowsInPlace() {
        return rowsInPlace != null;
    }

    /** Bytes held by all Kiln task allocators in this JVM (tests assert it returns to zero). */
    static long allocatedBytes() {
        return ROOT.getAllocatedMemory();
    }
}
