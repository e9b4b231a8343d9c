package dev.kiln.format.io;

import java.io.EOFException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/** Bytes already in memory (a broadcast model, a test fixture). */
public final class BytesByteSource implements ByteSource {
    private final ByteBuffer bytes;
    private final String location;

    public BytesByteSource(byte[] bytes, String location) {
        this.bytes = ByteBuffer.wrap(bytes).asReadOnlyBuffer();
        this.location = location;
    }

    @Override
    public String location() {
        return location;
    }

    @Override
    public long size() {
        return bytes.capacity();
    }

    @Override
    public void readFully(long position, byte[] buffer, int offset, int length) throws EOFException {
        check(position, length);
        bytes.get((int) position, buffer, offset, length);
    }

    @Override
    public ByteBuffer slice(long position, int length) throws EOFException {
        check(position, length);
        return bytes.slice((int) position, length).order(ByteOrder.LITTLE_ENDIAN);
    }

    private void check(long position, int length) throws EOFException {
        if (position < 0 || length < 0 || position + length > bytes.capacity()) {
            throw new EOFException(String.format("bytes [%d, %d) are outside %s (%d bytes)", position, position + length, location, bytes.capacity()));
        }
    }

    @Override
    public void close() {
    }
}
