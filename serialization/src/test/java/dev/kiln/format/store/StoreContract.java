package dev.kiln.format.store;

import dev.kiln.engine.Kiln;
import dev.kiln.engine.KilnException;
import dev.kiln.engine.exec.CompiledModel;
import dev.kiln.engine.exec.Validator;
import dev.kiln.engine.zoo.ModelZoo;
import dev.kiln.format.ReferenceModels;
import dev.kiln.format.kiln.KilnFormat;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

import java.io.IOException;
import java.util.Arrays;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** What every file system must satisfy, run against the local file system and a real HDFS. */
final class StoreContract {
    private StoreContract() {
    }

    static ModelZoo.Entry seedMlp() {
        ModelZoo.Entry entry = ModelZoo.get("seed-mlp");
        entry.block().loadParameters(ReferenceModels.weights("mlp"));
        return entry;
    }

    static void roundTripReproducesPyTorch(Configuration conf, String location) {
        ModelZoo.Entry entry = seedMlp();
        ModelStore store = new ModelStore(conf);
        try (CompiledModel model = Kiln.compile(entry.block(), entry.signature())) {
            var report = Validator.validate(entry.block(), model, List.of(ReferenceModels.inputs("mlp")));
            store.save(model, entry.name(), report, location, false);
        }
        KilnFormat.ModelFile file = store.load(location);
        assertThat(file.validation().path("passed").asBoolean()).isTrue();
        try (CompiledModel loaded = file.toCompiledModel()) {
            ReferenceModels.assertAllClose(loaded.run(ReferenceModels.inputs("mlp")).get("y").toFloatArray(), ReferenceModels.expected("mlp").get("y"));
        }
        // The broadcast path reads the same bytes and yields the same identity.
        byte[] bytes = store.readBytes(location);
        assertThat(KilnFormat.read(bytes, location).contentHash()).isEqualTo(file.contentHash());
    }

    static void overwriteOnlyWhenAsked(Configuration conf, String location) {
        ModelZoo.Entry entry = seedMlp();
        ModelStore store = new ModelStore(conf);
        try (CompiledModel model = Kiln.compile(entry.block(), entry.signature())) {
            store.save(model, "first", null, location, false);
            assertThatThrownBy(() -> store.save(model, "second", null, location, false))
                    .isInstanceOf(KilnException.class)
                    .hasMessageContaining("already exists; pass overwrite to replace it");
            assertThat(store.load(location).name()).isEqualTo("first");
            store.save(model, "second", null, location, true);
            assertThat(store.load(location).name()).isEqualTo("second");
        }
    }

    /** A failure at any point of the write leaves no file at the target and no temporary file beside it. */
    static void failuresLeaveNothingBehind(Configuration conf, String folder) throws IOException {
        ModelZoo.Entry entry = seedMlp();
        long size;
        try (CompiledModel model = Kiln.compile(entry.block(), entry.signature())) {
            String probe = folder + "/probe.kiln";
            new ModelStore(conf).save(model, "probe", null, probe, false);
            Path probePath = ModelStore.toPath(probe);
            FileSystem fs = probePath.getFileSystem(conf);
            size = fs.getFileStatus(probePath).getLen();
            fs.delete(probePath, false);
            long[] failurePoints = {0, 1, 100, size / 3, size / 2, size - 30, size - 1};
            for (long failAfter : failurePoints) {
                String target = folder + "/failing-" + failAfter + ".kiln";
                ModelStore failing = new ModelStore(conf, out -> new FailingStream(out, failAfter, false));
                assertThatThrownBy(() -> failing.save(model, "probe", null, target, false))
                        .isInstanceOf(KilnException.class)
                        .hasMessageContaining("injected failure after");
                assertNothingLeft(fs, ModelStore.toPath(folder));
            }
            ModelStore failingClose = new ModelStore(conf, out -> new FailingStream(out, Long.MAX_VALUE, true));
            assertThatThrownBy(() -> failingClose.save(model, "probe", null, folder + "/closing.kiln", false))
                    .isInstanceOf(KilnException.class)
                    .hasMessageContaining("injected failure on close");
            assertNothingLeft(fs, ModelStore.toPath(folder));
        }
    }

    private static void assertNothingLeft(FileSystem fs, Path folder) throws IOException {
        FileStatus[] left = fs.exists(folder) ? fs.listStatus(folder) : new FileStatus[0];
        assertThat(Arrays.stream(left).map(s -> s.getPath().getName()).toList()).as("files left in %s", folder).isEmpty();
    }
}
