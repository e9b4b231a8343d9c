package dev.kiln.format.store;

import java.io.FilterOutputStream;
import java.io.IOException;
import java.io.OutputStream;

/** Passes bytes through until {@code failAfter} have been written, then fails; optionally fails on close instead. */
final class FailingStream extends FilterOutputStream {
    private final long failAfter;
    private final boolean failOnClose;
    private long written;

    FailingStream(OutputStream out, long failAfter, boolean failOnClose) {
        super(out);
        this.failAfter = failAfter;
        this.failOnClose = failOnClose;
    }

    @Override
    public void write(int b) throws IOException {
        check(1);
        out.write(b);
        written++;
    }

    @Override
    public void write(byte[] b, int off, int len) throws IOException {
        check(len);
        out.write(b, off, len);
        written += len;
    }

    private void check(int len) throws IOException {
        if (!failOnClose && written + len > failAfter) {
            throw new IOException("injected failure after " + written + " bytes");
        }
    }

    @Override
    public void close() throws IOException {
        super.close();
        if (failOnClose) {
            throw new IOException("injected failure on close");
        }
    }
}
