package dev.kiln.format.store;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;
import dev.kiln.engine.exec.CompiledModel;
import dev.kiln.engine.exec.ValidationReport;
import dev.kiln.format.io.ByteSource;
import dev.kiln.format.io.HadoopByteSource;
import dev.kiln.format.io.PathByteSource;
import dev.kiln.format.kiln.KilnFormat;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileContext;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Options;
import org.apache.hadoop.fs.Path;

import java.io.IOException;
import java.io.OutputStream;
import java.net.URI;
import java.util.UUID;
import java.util.function.UnaryOperator;

import static java.util.Objects.requireNonNull;

/**
 * Saves and loads {@code .kiln} files through the Hadoop FileSystem API: {@code file://} (and plain paths),
 * {@code hdfs://}, and any scheme the Hadoop configuration knows ({@code s3a://} with hadoop-aws and its
 * {@code fs.s3a.*} keys; see docs/STORAGE.md).
 * <p>
 * Saving is atomic: the file is written under a hidden temporary name in the target folder and renamed into place,
 * so readers see either no file or a complete one; on any failure the temporary file is deleted. An existing file is
 * replaced only when asked. Loading reads headers with positioned reads and maps (local) or streams (remote) the
 * weights off the Java heap.
 */
public final class ModelStore {
    private final Configuration conf;
    private final UnaryOperator<OutputStream> streamDecorator;

    public ModelStore(Configuration conf) {
        this(conf, UnaryOperator.identity());
    }

    /** For tests: {@code streamDecorator} wraps the output stream of every save (to inject failures). */
    ModelStore(Configuration conf, UnaryOperator<OutputStream> streamDecorator) {
        this.conf = requireNonNull(conf, "conf is null");
        this.streamDecorator = streamDecorator;
    }

    /** A store with Hadoop's default configuration (core-site.xml etc. from the classpath, if any). */
    public static ModelStore withDefaults() {
        return new ModelStore(new Configuration());
    }

    /** A Hadoop path for a URI or a plain local path (relative paths resolve against the working directory). */
    public static Path toPath(String location) {
        requireNonNull(location, "location is null");
        // A URI has a scheme followed by "://" (or is file:/...); anything else is a local path, whatever it contains.
        if (!location.matches("^[a-zA-Z][a-zA-Z0-9+.-]*://.*") && !location.startsWith("file:")) {
            return new Path(java.nio.file.Paths.get(location).toAbsolutePath().toUri());
        }
        try {
            return new Path(new URI(location.replace(" ", "%20")));
        } catch (java.net.URISyntaxException e) {
            throw KilnException.of(ErrorCode.INVALID_ARGUMENT, "Model location '%s' is not a valid URI: %s", location, e.getMessage());
        }
    }

    private static boolean isLocal(FileSystem fs) {
        return "file".equals(fs.getUri().getScheme());
    }

    private FileSystem fileSystem(Path path) throws IOException {
        FileSystem fs = path.getFileSystem(conf);
        // The local file system without Hadoop's .crc side files: the format carries its own checksums.
        return isLocal(fs) ? FileSystem.getLocal(conf).getRawFileSystem() : fs;
    }

    /** Saves {@code model} to {@code location}; refuses to replace an existing file unless {@code overwrite}. */
    public Path save(CompiledModel model, String name, ValidationReport validation, String location, boolean overwrite) {
        return save(model, name, null, validation, location, overwrite);
    }

    /** As {@link #save(CompiledModel, String, ValidationReport, String, boolean)}, recording the model's source. */
    public Path save(CompiledModel model, String name, String source, ValidationReport validation, String location, boolean overwrite) {
        Path target = toPath(location);
        Path temporary = null;
        FileSystem fs = null;
        try {
            fs = fileSystem(target);
            if (!overwrite && fs.exists(target)) {
                throw KilnException.of(ErrorCode.IO_ERROR, "Model file %s already exists; pass overwrite to replace it", target);
            }
            Path parent = target.getParent();
            if (parent != null && !fs.exists(parent)) {
                fs.mkdirs(parent);
            }
            temporary = new Path(parent, "." + target.getName() + "." + UUID.randomUUID() + ".tmp");
            try (OutputStream out = streamDecorator.apply(fs.create(temporary, false))) {
                KilnFormat.write(model.graph(), model.passes(), name, source, validation, out);
            }
            rename(fs, temporary, target, overwrite);
            temporary = null;
            return fs.makeQualified(target);
        } catch (IOException e) {
            throw new KilnException(ErrorCode.IO_ERROR, "Cannot save model to " + target + ": " + e.getMessage(), e);
        } finally {
            if (temporary != null) {
                deleteQuietly(fs, temporary);
            }
        }
    }

    private void rename(FileSystem fs, Path from, Path to, boolean overwrite) throws IOException {
        if (isLocal(fs)) {
            // POSIX rename replaces the target atomically.
            if (!overwrite && fs.exists(to)) {
                throw KilnException.of(ErrorCode.IO_ERROR, "Model file %s appeared while saving; pass overwrite to replace it", to);
            }
            if (!fs.rename(from, to)) {
                throw new IOException("rename of " + from + " to " + to + " failed");
            }
            return;
        }
        FileContext context = FileContext.getFileContext(fs.getUri(), conf);
        if (overwrite) {
            context.rename(from, to, Options.Rename.OVERWRITE);
        } else {
            context.rename(from, to, Options.Rename.NONE);
        }
    }

    private static void deleteQuietly(FileSystem fs, Path path) {
        if (fs == null) {
            return;
        }
        try {
            fs.delete(path, false);
        } catch (IOException ignored) {
            // The original failure is what the caller needs to see.
        }
    }

    /** Loads and checks a model file (see {@link KilnFormat#read(ByteSource)}). */
    public KilnFormat.ModelFile load(String location) {
        Path path = toPath(location);
        try (ByteSource source = open(path)) {
            return KilnFormat.read(source);
        } catch (java.io.FileNotFoundException | java.nio.file.NoSuchFileException e) {
            throw KilnException.of(ErrorCode.IO_ERROR, "Cannot read model file %s: no such file", path);
        } catch (IOException e) {
            throw new KilnException(ErrorCode.IO_ERROR, "Cannot read model file " + path + ": " + e.getMessage(), e);
        }
    }

    /** The file's size in bytes. */
    public long size(String location) {
        Path path = toPath(location);
        try {
            return fileSystem(path).getFileStatus(path).getLen();
        } catch (java.io.FileNotFoundException e) {
            throw KilnException.of(ErrorCode.IO_ERROR, "Cannot read model file %s: no such file", path);
        } catch (IOException e) {
            throw new KilnException(ErrorCode.IO_ERROR, "Cannot read model file " + path + ": " + e.getMessage(), e);
        }
    }

    /** The whole file as bytes (for small models shipped in a Spark broadcast). */
    public byte[] readBytes(String location) {
        Path path = toPath(location);
        try (ByteSource source = open(path)) {
            long size = source.size();
            if (size > Integer.MAX_VALUE - 8) {
                throw KilnException.of(ErrorCode.INVALID_ARGUMENT, "Model file %s is %d bytes, too large to hold in memory", path, size);
            }
            byte[] bytes = new byte[(int) size];
            source.readFully(0, bytes, 0, bytes.length);
            return bytes;
        } catch (IOException e) {
            throw new KilnException(ErrorCode.IO_ERROR, "Cannot read model file " + path + ": " + e.getMessage(), e);
        }
    }

    private ByteSource open(Path path) throws IOException {
        FileSystem fs = fileSystem(path);
        if (isLocal(fs)) {
            return new PathByteSource(java.nio.file.Paths.get(path.toUri()));
        }
        return new HadoopByteSource(fs, path);
    }
}
