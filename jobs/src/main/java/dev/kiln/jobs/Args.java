package dev.kiln.jobs;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Parsed {@code --name value} and {@code --flag} arguments of one command. Unknown options, missing values and bad
 * numbers are {@link UsageException}s: the CLI prints the command's usage and exits 2.
 */
public final class Args {
    private final String command;
    /** Every value given per option, in order ("true" for a flag). */
    private final Map<String, List<String>> values = new LinkedHashMap<>();

    private Args(String command) {
        this.command = command;
    }

    /** Parses {@code argv}; {@code options} take a value, {@code flags} do not. */
    public static Args parse(String command, String[] argv, Set<String> options, Set<String> flags) {
        Args args = new Args(command);
        for (int i = 0; i < argv.length; i++) {
            String a = argv[i];
            if (!a.startsWith("--")) {
                throw new UsageException(command, "unexpected argument '" + a + "'");
            }
            String name = a.substring(2);
            String inline = null;
            int eq = name.indexOf('=');
            if (eq >= 0) {
                inline = name.substring(eq + 1);
                name = name.substring(0, eq);
            }
            if (flags.contains(name)) {
                args.values.computeIfAbsent(name, k -> new ArrayList<>()).add("true");
            } else if (options.contains(name)) {
                String value = inline;
                if (value == null) {
                    if (i + 1 >= argv.length || argv[i + 1].startsWith("--")) {
                        throw new UsageException(command, "option --" + name + " needs a value");
                    }
                    value = argv[++i];
                }
                args.values.computeIfAbsent(name, k -> new ArrayList<>()).add(value);
            } else {
                throw new UsageException(command, "unknown option --" + name);
            }
        }
        return args;
    }

    public boolean has(String name) {
        return values.containsKey(name);
    }

    public boolean flag(String name) {
        return values.containsKey(name);
    }

    /** The option's value; an option that takes one value but was given twice is a usage error, not a silent pick. */
    public String get(String name, String defaultValue) {
        List<String> given = values.get(name);
        if (given == null) {
            return defaultValue;
        }
        if (given.size() > 1) {
            throw new UsageException(command, "option --" + name + " takes one value but was given " + given.size() + " times: " + given);
        }
        return given.get(0);
    }

    /**
     * Every value of a repeatable option, in order, each also split at commas ({@code --col a --col b,c} is a, b, c);
     * {@code defaultValue} (split the same way) when the option is absent. Empty parts are usage errors.
     */
    public List<String> getList(String name, String defaultValue) {
        List<String> given = values.getOrDefault(name, List.of(defaultValue));
        List<String> out = new ArrayList<>();
        for (String value : given) {
            for (String part : value.split(",", -1)) {
                if (part.isBlank()) {
                    throw new UsageException(command, "--" + name + " has an empty entry in '" + value + "'");
                }
                out.add(part.trim());
            }
        }
        return out;
    }

    public String required(String name) {
        String v = get(name, null);
        if (v == null) {
            throw new UsageException(command, "missing required option --" + name);
        }
        return v;
    }

    public int getInt(String name, int defaultValue) {
        String v = get(name, null);
        if (v == null) {
            return defaultValue;
        }
        try {
            int n = Integer.parseInt(v);
            if (n <= 0) {
                throw new NumberFormatException();
            }
            return n;
        } catch (NumberFormatException e) {
            throw new UsageException(command, "--" + name + " must be a positive integer but was '" + v + "'");
        }
    }

    public List<Integer> getIntList(String name, String defaultValue) {
        String v = get(name, defaultValue);
        List<Integer> out = new ArrayList<>();
        for (String part : v.split(",")) {
            try {
                int n = Integer.parseInt(part.trim());
                if (n <= 0) {
                    throw new NumberFormatException();
                }
                out.add(n);
            } catch (NumberFormatException e) {
                throw new UsageException(command, "--" + name + " must be a comma-separated list of positive integers but was '" + v + "'");
            }
        }
        return out;
    }

    /** A bad command line: the CLI prints the message and the command's usage, and exits 2. */
    public static final class UsageException extends RuntimeException {
        private final String command;

        public UsageException(String command, String message) {
            super(message);
            this.command = command;
        }

        public String command() {
            return command;
        }
    }
}
