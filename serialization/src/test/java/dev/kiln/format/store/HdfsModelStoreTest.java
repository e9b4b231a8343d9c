package dev.kiln.format.store;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.hdfs.MiniDFSCluster;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.assertj.core.api.Assertions.assertThat;

/** The store against a real HDFS: one in-process MiniDFSCluster (loopback only) for the whole class. */
class HdfsModelStoreTest {
    private static MiniDFSCluster cluster;
    private static Configuration conf;
    private static String root;
    private static Path baseDir;

    @BeforeAll
    static void startCluster() throws Exception {
        baseDir = Files.createTempDirectory("kiln-minidfs");
        conf = new Configuration();
        conf.set(MiniDFSCluster.HDFS_MINIDFS_BASEDIR, baseDir.toString());
        conf.set("dfs.namenode.rpc-bind-host", "127.0.0.1");
        conf.set("dfs.namenode.http-address", "127.0.0.1:0");
        conf.set("dfs.datanode.address", "127.0.0.1:0");
        conf.set("dfs.datanode.http.address", "127.0.0.1:0");
        conf.set("dfs.datanode.ipc.address", "127.0.0.1:0");
        cluster = new MiniDFSCluster.Builder(conf).numDataNodes(1).build();
        cluster.waitActive();
        root = "hdfs://127.0.0.1:" + cluster.getNameNodePort() + "/models";
    }

    @AfterAll
    static void stopCluster() throws Exception {
        if (cluster != null) {
            cluster.shutdown(true);
        }
        if (Files.exists(baseDir)) {
            try (var files = Files.walk(baseDir)) {
                files.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
    }

    @Test
    void roundTripOverHdfsReproducesPyTorch() {
        assertThat(root).startsWith("hdfs://127.0.0.1:");
        StoreContract.roundTripReproducesPyTorch(conf, root + "/round-trip/mlp.kiln");
    }

    @Test
    void overwriteOnlyWhenAsked() {
        StoreContract.overwriteOnlyWhenAsked(conf, root + "/overwrite/mlp.kiln");
    }

    @Test
    void failuresLeaveNothingBehind() throws Exception {
        StoreContract.failuresLeaveNothingBehind(conf, root + "/failures");
    }
}
