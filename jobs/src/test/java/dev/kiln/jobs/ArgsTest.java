package dev.kiln.jobs;

import org.junit.jupiter.api.Test;

import java.util.Set;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class ArgsTest {
    private static Args parse(String... argv) {
        return Args.parse("score", argv, Set.of("input-col", "model", "batch"), Set.of("overwrite"));
    }

    /** A repeatable option keeps every value, in order, split at commas; absent, it is its default split the same way. */
    @Test
    void repeatedOptionsKeepEveryValueInOrder() {
        Args args = parse("--input-col", "x=a", "--model", "m.kiln", "--input-col=b,c", "--input-col", " d ");
        assertThat(args.getList("input-col", "features")).containsExactly("x=a", "b", "c", "d");
        assertThat(parse().getList("input-col", "features,extra")).containsExactly("features", "extra");
        assertThatThrownBy(() -> parse("--input-col", "a,,b").getList("input-col", "features"))
                .isInstanceOf(Args.UsageException.class).hasMessage("--input-col has an empty entry in 'a,,b'");
    }

    /** An option that takes one value, given twice, is a usage error naming both values, not a silent last-one-wins. */
    @Test
    void aSingleValueOptionGivenTwiceIsRefused() {
        Args args = parse("--model", "a.kiln", "--model", "b.kiln", "--batch", "8", "--batch", "9", "--overwrite", "--overwrite");
        assertThatThrownBy(() -> args.required("model")).isInstanceOf(Args.UsageException.class)
                .hasMessage("option --model takes one value but was given 2 times: [a.kiln, b.kiln]");
        assertThatThrownBy(() -> args.getInt("batch", 1)).hasMessage("option --batch takes one value but was given 2 times: [8, 9]");
        assertThat(args.flag("overwrite")).isTrue();
    }
}
