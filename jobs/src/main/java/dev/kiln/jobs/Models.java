package dev.kiln.jobs;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;

/** Shared helpers of the commands: resolving paths with errors that name them. */
final class Models {
    private Models() {
    }

    /** A readable input file, or an error naming the path. */
    static Path existingFile(String location) {
        Path path = Paths.get(location.startsWith("file://") ? location.substring("file://".length()) : location);
        if (!Files.isRegularFile(path) || !Files.isReadable(path)) {
            throw KilnException.of(ErrorCode.IO_ERROR, "Cannot read %s: no such readable file", path);
        }
        return path;
    }

    /** An output file path whose folder is created if needed. */
    static Path outputFile(String location) {
        Path path = Paths.get(location.startsWith("file://") ? location.substring("file://".length()) : location).toAbsolutePath();
        try {
            Files.createDirectories(path.getParent());
        } catch (java.io.IOException e) {
            throw new KilnException(ErrorCode.IO_ERROR, "Cannot create folder " + path.getParent() + ": " + e.getMessage(), e);
        }
        return path;
    }
}
