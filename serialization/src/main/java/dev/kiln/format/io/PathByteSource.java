package dev.kiln.format.io;

import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/** A local file: positioned reads through a FileChannel, slices memory-mapped. */
public final class PathByteSource implements ByteSource {
    private final Path path;
    private final FileChannel channel;

    public PathByteSource(Path path) throws IOException {
        this.path = path;
        this.channel = FileChannel.open(path, StandardOpenOption.READ);
    }

    @Override
    public String location() {
        return path.toString();
    }

    @Override
    public long size() throws IOException {
        return channel.size();
    }

    @Override
    public void readFully(long position, byte[] buffer, int offset, int length) throws IOException {
        ByteBuffer target = ByteBuffer.wrap(buffer, offset, length);
        long at = position;
        while (target.hasRemaining()) {
            int n = channel.read(target, at);
            if (n < 0) {
                throw new EOFException("end of " + path + " at byte " + at);
            }
            at += n;
        }
    }

    @Override
    public ByteBuffer slice(long position, int length) throws IOException {
        if (position < 0 || position + length > channel.size()) {
            throw new EOFException(String.format("bytes [%d, %d) are outside %s (%d bytes)", position, position + length, path, channel.size()));
        }
        return channel.map(FileChannel.MapMode.READ_ONLY, position, length).order(ByteOrder.LITTLE_ENDIAN);
    }

    @Override
    public void close() throws IOException {
        channel.close();
    }
}
