package dev.kiln.format.kiln;

import dev.kiln.engine.ops.OpDef;
import dev.kiln.engine.ops.OpRegistry;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.assertj.core.api.Assertions.assertThat;

/** docs/FORMAT.md documents every op of the registry, as generated; a stale document fails the build. */
class FormatSpecTest {
    private static final Path FORMAT_MD = Path.of(System.getProperty("kiln.docs.dir", "../docs"), "FORMAT.md");

    @Test
    void theOpReferenceInFormatMdIsCurrent() throws Exception {
        String document = Files.readString(FORMAT_MD, StandardCharsets.UTF_8);
        String current = FormatSpec.update(document);
        if (Boolean.getBoolean("kiln.updateDocs")) {
            Files.writeString(FORMAT_MD, current, StandardCharsets.UTF_8);
            return;
        }
        assertThat(document)
                .as("docs/FORMAT.md is out of date with the op registry; regenerate it with "
                        + "mvn -pl serialization test -Dtest=FormatSpecTest -Dkiln.updateDocs=true")
                .isEqualTo(current);
        for (OpDef op : OpRegistry.all()) {
            assertThat(document).contains("| `" + op.name() + "` |");
        }
    }
}
