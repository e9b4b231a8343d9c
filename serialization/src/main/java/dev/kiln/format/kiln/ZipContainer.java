package dev.kiln.format.kiln;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;
import dev.kiln.format.io.ByteSource;

import java.io.FilterOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The zip container of a {@code .kiln} file, in one canonical form: entries stored (never compressed, so no zip bomb
 * is possible), ZIP64 records always present (entries and files over 4 GiB work), fixed timestamps and attributes,
 * no comments, no data descriptors, entries back to back from byte 0, the central directory right after them. Any
 * standard zip tool reads it. The reader accepts only this form and checks every header byte against it, so any
 * damage to the structure is caught, and each entry's CRC-32 catches damage to its data.
 */
final class ZipContainer {
    static final int LOCAL_HEADER = 0x04034b50;
    static final int CENTRAL_HEADER = 0x02014b50;
    static final int ZIP64_END = 0x06064b50;
    static final int ZIP64_LOCATOR = 0x07064b50;
    static final int END = 0x06054b50;
    static final int VERSION = 45;
    static final int DOS_TIME = 0;
    static final int DOS_DATE = 0x0021;
    static final int END_BYTES = 22;
    static final int LOCATOR_BYTES = 20;
    static final int ZIP64_END_BYTES = 56;
    /** A bound on entry names and on the number of entries, far above what a .kiln file has. */
    static final int MAX_ENTRIES = 16;

    private ZipContainer() {
    }

    /** An entry as found in a file: where its data starts, its size and CRC-32. */
    record Entry(String name, long dataOffset, long size, long crc) { }

    static byte[] localHeader(String name, long size, long crc) {
        byte[] n = name.getBytes(StandardCharsets.UTF_8);
        ByteBuffer b = ByteBuffer.allocate(30 + n.length + 20).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(LOCAL_HEADER).putShort((short) VERSION).putShort((short) 0).putShort((short) 0)
                .putShort((short) DOS_TIME).putShort((short) DOS_DATE).putInt((int) crc).putInt(-1).putInt(-1)
                .putShort((short) n.length).putShort((short) 20).put(n)
                .putShort((short) 1).putShort((short) 16).putLong(size).putLong(size);
        return b.array();
    }

    static byte[] centralHeader(String name, long size, long crc, long localOffset) {
        byte[] n = name.getBytes(StandardCharsets.UTF_8);
        ByteBuffer b = ByteBuffer.allocate(46 + n.length + 28).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(CENTRAL_HEADER).putShort((short) VERSION).putShort((short) VERSION).putShort((short) 0).putShort((short) 0)
                .putShort((short) DOS_TIME).putShort((short) DOS_DATE).putInt((int) crc).putInt(-1).putInt(-1)
                .putShort((short) n.length).putShort((short) 28).putShort((short) 0)
                .putShort((short) 0).putShort((short) 0).putInt(0).putInt(-1).put(n)
                .putShort((short) 1).putShort((short) 24).putLong(size).putLong(size).putLong(localOffset);
        return b.array();
    }

    static byte[] trailer(int entries, long centralOffset, long centralSize) {
        long zip64End = centralOffset + centralSize;
        ByteBuffer b = ByteBuffer.allocate(ZIP64_END_BYTES + LOCATOR_BYTES + END_BYTES).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(ZIP64_END).putLong(ZIP64_END_BYTES - 12).putShort((short) VERSION).putShort((short) VERSION)
                .putInt(0).putInt(0).putLong(entries).putLong(entries).putLong(centralSize).putLong(centralOffset);
        b.putInt(ZIP64_LOCATOR).putInt(0).putLong(zip64End).putInt(1);
        b.putInt(END).putShort((short) 0).putShort((short) 0).putShort((short) -1).putShort((short) -1)
                .putInt(-1).putInt(-1).putShort((short) 0);
        return b.array();
    }

    /** Writes entries one after another, then the central directory. */
    static final class Writer {
        private final OutputStream out;
        private final List<byte[]> central = new ArrayList<>();
        private long position;

        Writer(OutputStream out) {
            this.out = out;
        }

        /** Writes an entry whose size and CRC-32 are known in advance; {@code body} must write exactly {@code size} bytes. */
        void entry(String name, long size, long crc, Body body) throws IOException {
            byte[] header = localHeader(name, size, crc);
            central.add(centralHeader(name, size, crc, position));
            out.write(header);
            position += header.length;
            long[] written = {0};
            OutputStream counting = new FilterOutputStream(out) {
                @Override
                public void write(int b) throws IOException {
                    out.write(b);
                    written[0]++;
                }

                @Override
                public void write(byte[] b, int off, int len) throws IOException {
                    out.write(b, off, len);
                    written[0] += len;
                }

                @Override
                public void close() {
                }
            };
            body.write(counting);
            if (written[0] != size) {
                throw new IllegalStateException("entry " + name + " wrote " + written[0] + " bytes, declared " + size);
            }
            position += size;
        }

        void finish() throws IOException {
            long centralOffset = position;
            long centralSize = 0;
            for (byte[] h : central) {
                out.write(h);
                centralSize += h.length;
            }
            out.write(trailer(central.size(), centralOffset, centralSize));
            out.flush();
        }
    }

    /** Writes an entry's bytes. */
    @FunctionalInterface
    interface Body {
        void write(OutputStream out) throws IOException;
    }

    /** Reads and checks the container; returns the entries in file order, which must be {@code expectedNames}. */
    static List<Entry> read(ByteSource source, List<String> expectedNames) throws IOException {
        String where = source.location();
        long size = source.size();
        int trailerBytes = ZIP64_END_BYTES + LOCATOR_BYTES + END_BYTES;
        if (size < trailerBytes) {
            throw corrupt(where, "file is %d bytes, too short for a .kiln zip (at least %d)", size, trailerBytes);
        }
        byte[] trailer = new byte[trailerBytes];
        source.readFully(size - trailerBytes, trailer, 0, trailerBytes);
        ByteBuffer t = ByteBuffer.wrap(trailer).order(ByteOrder.LITTLE_ENDIAN);
        if (t.getInt(0) != ZIP64_END || t.getInt(ZIP64_END_BYTES) != ZIP64_LOCATOR || t.getInt(ZIP64_END_BYTES + LOCATOR_BYTES) != END) {
            throw corrupt(where, "no canonical zip end records in the last %d bytes (truncated, or not written by Kiln)", trailerBytes);
        }
        long entries = t.getLong(24);
        long centralSize = t.getLong(40);
        long centralOffset = t.getLong(48);
        if (entries != expectedNames.size() || centralOffset < 0 || centralSize < 0
                || centralOffset + centralSize != size - trailerBytes) {
            throw corrupt(where, "zip directory claims %d entries, %d bytes at %d; expected %d entries ending at byte %d",
                    entries, centralSize, centralOffset, expectedNames.size(), size - trailerBytes);
        }
        if (!Arrays.equals(trailer, trailer((int) entries, centralOffset, centralSize))) {
            throw corrupt(where, "zip end records differ from the canonical form");
        }
        if (centralSize > 4096L * MAX_ENTRIES) {
            throw corrupt(where, "zip directory of %d bytes is implausibly large", centralSize);
        }
        byte[] central = new byte[(int) centralSize];
        source.readFully(centralOffset, central, 0, central.length);
        ByteBuffer c = ByteBuffer.wrap(central).order(ByteOrder.LITTLE_ENDIAN);
        List<Entry> result = new ArrayList<>();
        long expectedLocal = 0;
        int at = 0;
        for (String expectedName : expectedNames) {
            if (at + 46 > central.length || c.getInt(at) != CENTRAL_HEADER) {
                throw corrupt(where, "zip directory entry %d is damaged", result.size());
            }
            int nameLength = Short.toUnsignedInt(c.getShort(at + 28));
            if (nameLength > 1024 || at + 46 + nameLength + 28 > central.length) {
                throw corrupt(where, "zip directory entry %d has a damaged name length %d", result.size(), nameLength);
            }
            String name = new String(central, at + 46, nameLength, StandardCharsets.UTF_8);
            if (!name.equals(expectedName)) {
                throw corrupt(where, "unexpected zip entry '%s' where '%s' belongs (a .kiln file holds exactly %s, in that order)",
                        name, expectedName, expectedNames);
            }
            long crc = Integer.toUnsignedLong(c.getInt(at + 16));
            long entrySize = c.getLong(at + 46 + nameLength + 4);
            long localOffset = c.getLong(at + 46 + nameLength + 20);
            if (entrySize < 0 || entrySize > size) {
                throw corrupt(where, "entry '%s' claims %d bytes in a %d-byte file", name, entrySize, size);
            }
            byte[] canonical = centralHeader(name, entrySize, crc, expectedLocal);
            if (!Arrays.equals(Arrays.copyOfRange(central, at, at + canonical.length), canonical)) {
                throw corrupt(where, "zip directory entry for '%s' differs from the canonical form (local header offset %d, expected %d)",
                        name, localOffset, expectedLocal);
            }
            byte[] expectedHeader = localHeader(name, entrySize, crc);
            if (expectedLocal + expectedHeader.length + entrySize > centralOffset) {
                throw corrupt(where, "entry '%s' (%d bytes at %d) overruns the zip directory at %d", name, entrySize, expectedLocal, centralOffset);
            }
            byte[] header = new byte[expectedHeader.length];
            source.readFully(expectedLocal, header, 0, header.length);
            if (!Arrays.equals(header, expectedHeader)) {
                throw corrupt(where, "local header of '%s' at byte %d differs from its directory entry", name, expectedLocal);
            }
            long dataOffset = expectedLocal + header.length;
            result.add(new Entry(name, dataOffset, entrySize, crc));
            expectedLocal = dataOffset + entrySize;
            at += canonical.length;
        }
        if (expectedLocal != centralOffset || at != central.length) {
            throw corrupt(where, "entries end at byte %d but the zip directory starts at %d", expectedLocal, centralOffset);
        }
        return result;
    }

    static KilnException corrupt(String where, String format, Object... args) {
        return new KilnException(ErrorCode.CORRUPT_MODEL, "Corrupt model " + where + ": " + String.format(format, args));
    }
}
