package dev.kiln.spark;

import dev.kiln.engine.ErrorCode;
import dev.kiln.engine.KilnException;
import dev.kiln.format.kiln.KilnFormat;
import dev.kiln.format.store.ModelStore;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.broadcast.Broadcast;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.util.SerializableConfiguration;

import java.io.Serializable;

/**
 * How a model reaches executors. Small models (up to the broadcast threshold) travel as their file's bytes in a Spark
 * broadcast, fetched once per executor; larger ones as their URI, read from storage by each executor JVM once, with
 * the driver's Hadoop configuration. Either way the content hash identifies the model: executors cache by it and
 * refuse a file that changed since the driver read it.
 */
public final class ModelHandle implements Serializable {
    private static final long serialVersionUID = 1L;

    private final String uri;
    private final String contentHash;
    private final Broadcast<byte[]> bytes;
    private final SerializableConfiguration hadoopConf;
    private transient KilnFormat.ModelFile driverFile;

    private ModelHandle(String uri, String contentHash, Broadcast<byte[]> bytes, SerializableConfiguration hadoopConf, KilnFormat.ModelFile file) {
        this.uri = uri;
        this.contentHash = contentHash;
        this.bytes = bytes;
        this.hadoopConf = hadoopConf;
        this.driverFile = file;
    }

    /** The default broadcast threshold: model files up to 64 MiB travel in a broadcast. */
    public static final long DEFAULT_BROADCAST_THRESHOLD = 64L << 20;

    /** Reads and checks the model on the driver; broadcasts its bytes when the file is at most {@code broadcastThreshold}. */
    public static ModelHandle create(SparkSession spark, String uri, long broadcastThreshold) {
        ModelStore store = new ModelStore(spark.sparkContext().hadoopConfiguration());
        KilnFormat.ModelFile file = store.load(uri);
        long size = store.size(uri);
        Broadcast<byte[]> broadcast = null;
        if (size <= broadcastThreshold) {
            byte[] data = store.readBytes(uri);
            KilnFormat.ModelFile again = KilnFormat.read(data, uri);
            if (!again.contentHash().equals(file.contentHash())) {
                throw KilnException.of(ErrorCode.CORRUPT_MODEL, "Model file %s changed while it was being read", uri);
            }
            broadcast = JavaSparkContext.fromSparkContext(spark.sparkContext()).broadcast(data);
        }
        return new ModelHandle(uri, file.contentHash(), broadcast, new SerializableConfiguration(spark.sparkContext().hadoopConfiguration()), file);
    }

    public String uri() {
        return uri;
    }

    public String contentHash() {
        return contentHash;
    }

    public boolean isBroadcast() {
        return bytes != null;
    }

    /** The model as read on the driver (signature checks); null on executors. */
    public KilnFormat.ModelFile driverFile() {
        return driverFile;
    }

    /** Reads the model on an executor (from the broadcast or from storage) and checks it is the driver's model. */
    KilnFormat.ModelFile read() {
        KilnFormat.ModelFile file = bytes != null
                ? KilnFormat.read(bytes.value(), uri)
                : new ModelStore(hadoopConf.value()).load(uri);
        if (!file.contentHash().equals(contentHash)) {
            throw KilnException.of(ErrorCode.CORRUPT_MODEL,
                    "Model file %s changed since the job started: content hash %s, the driver read %s", uri, file.contentHash(), contentHash);
        }
        return file;
    }

    /** Releases the broadcast's blocks (after the last job that uses this handle). */
    public void destroy() {
        if (bytes != null) {
            bytes.destroy();
        }
    }
}
