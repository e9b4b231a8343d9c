package dev.kiln.format.io;

import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * Random access to the bytes of a file, local or remote, without reading it whole: positioned reads for headers and
 * small entries, and {@link #slice} for bulk data (memory-mapped for local files, a direct buffer filled by positioned
 * reads elsewhere, so large weights never land on the Java heap). The caller closes it; slices stay valid after close.
 */
public interface ByteSource extends Closeable {
    /** Where the bytes come from, for messages. */
    String location();

    long size() throws IOException;

    /** Reads exactly {@code length} bytes at {@code position}; fails at end of file. */
    void readFully(long position, byte[] buffer, int offset, int length) throws IOException;

    /** {@code length} (&lt; 2 GiB) bytes at {@code position} as a read-only little-endian buffer off the Java heap. */
    ByteBuffer slice(long position, int length) throws IOException;
}
