package dev.kiln.format.store;

import dev.kiln.engine.KilnException;
import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class LocalModelStoreTest {
    private final Configuration conf = new Configuration();

    @Test
    void plainPathsAndFileUrisRoundTrip(@TempDir Path dir) {
        StoreContract.roundTripReproducesPyTorch(conf, dir.resolve("plain.kiln").toString());
        StoreContract.roundTripReproducesPyTorch(conf, dir.resolve("uri.kiln").toUri().toString());
        assertThat(dir.toFile().list()).containsExactlyInAnyOrder("plain.kiln", "uri.kiln");
    }

    @Test
    void plainPathsMayHoldCharactersThatAreNotValidInUris(@TempDir Path dir) {
        Path odd = dir.resolve("100% [final] a:b").resolve("m.kiln");
        StoreContract.roundTripReproducesPyTorch(conf, odd.toString());
        assertThat(odd).isRegularFile();
    }

    @Test
    void overwriteOnlyWhenAsked(@TempDir Path dir) {
        StoreContract.overwriteOnlyWhenAsked(conf, dir.resolve("m.kiln").toString());
    }

    @Test
    void failuresLeaveNothingBehind(@TempDir Path dir) throws Exception {
        StoreContract.failuresLeaveNothingBehind(conf, dir.resolve("models").toUri().toString());
    }

    @Test
    void aMissingFileIsNamed(@TempDir Path dir) {
        Path absent = dir.resolve("absent.kiln");
        assertThatThrownBy(() -> ModelStore.withDefaults().load(absent.toString()))
                .isInstanceOf(KilnException.class)
                .hasMessage("Cannot read model file file:" + absent + ": no such file");
    }
}
