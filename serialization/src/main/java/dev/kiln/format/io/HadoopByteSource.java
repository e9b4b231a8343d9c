package dev.kiln.format.io;

import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * A file on any Hadoop FileSystem (hdfs://, s3a://, ...): positioned reads, and slices copied into direct buffers
 * through a small reused heap chunk, so large weights never sit on the Java heap.
 */
public final class HadoopByteSource implements ByteSource {
    private static final int CHUNK = 1 << 20;

    private final Path path;
    private final FSDataInputStream in;
    private final long size;

    public HadoopByteSource(FileSystem fs, Path path) throws IOException {
        this.path = path;
        this.size = fs.getFileStatus(path).getLen();
        this.in = fs.open(path);
    }

    @Override
    public String location() {
        return path.toString();
    }

    @Override
    public long size() {
        return size;
    }

    @Override
    public void readFully(long position, byte[] buffer, int offset, int length) throws IOException {
        if (position < 0 || position + length > size) {
            throw new EOFException(String.format("bytes [%d, %d) are outside %s (%d bytes)", position, position + length, path, size));
        }
        in.readFully(position, buffer, offset, length);
    }

    @Override
    public ByteBuffer slice(long position, int length) throws IOException {
        if (position < 0 || position + length > size) {
            throw new EOFException(String.format("bytes [%d, %d) are outside %s (%d bytes)", position, position + length, path, size));
        }
        ByteBuffer target = ByteBuffer.allocateDirect(length);
        byte[] chunk = new byte[Math.min(CHUNK, Math.max(1, length))];
        for (int done = 0; done < length; ) {
            int n = Math.min(chunk.length, length - done);
            in.readFully(position + done, chunk, 0, n);
            target.put(chunk, 0, n);
            done += n;
        }
        return target.flip().asReadOnlyBuffer().order(ByteOrder.LITTLE_ENDIAN);
    }

    @Override
    public void close() throws IOException {
        in.close();
    }
}
