package dev.kiln.engine.backend;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;
import dev.kiln.engine.exec.Executor;

/**
 * The life cycle every backend's loaded model shares: its static data (weights) is read by every executor, so
 * {@link #close} frees it only once no executor is open, or, if some are, when the last one closes; no new executor
 * starts after close. Subclasses create executors (which call {@link #executorClosed} from their own close) and free
 * the static data.
 */
public abstract class SharedStatics implements Backend.LoadedModel {
    private int liveExecutors;
    private boolean closeRequested;

    /** A new executor for {@code capacity} rows; it must call {@link #executorClosed} when it closes. */
    protected abstract Executor createExecutor(long capacity);

    /** Frees the static data; called once, when the model is closed and no executor is open. */
    protected abstract void freeStatics();

    @Override
    public final Executor newExecutor(long capacity) {
        synchronized (this) {
            if (closeRequested) {
                throw KilnException.of(ErrorCode.INVALID_ARGUMENT, "The compiled model is closed; no new executors");
            }
            liveExecutors++;
        }
        try {
            return createExecutor(capacity);
        } catch (RuntimeException e) {
            executorClosed();
            throw e;
        }
    }

    /** Called by each executor when it closes: the static data goes once the model is closed and no executor runs. */
    public final void executorClosed() {
        boolean free;
        synchronized (this) {
            liveExecutors--;
            free = closeRequested && liveExecutors == 0;
        }
        if (free) {
            freeStatics();
        }
    }

    /** Frees the static data now if no executor is open, else when the last one closes (executors never see freed memory). */
    @Override
    public final void close() {
        boolean free;
        synchronized (this) {
            if (closeRequested) {
                return;
            }
            closeRequested = true;
            free = liveExecutors == 0;
        }
        if (free) {
            freeStatics();
        }
    }
}
