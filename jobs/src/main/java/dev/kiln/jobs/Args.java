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
    private final Map<String, String> values = new LinkedHashMap<>();

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
                args.values.put(name, "true");
            } else if (options.contains(name)) {
                String value = inline;
                if (value == null) {
                    if (i + 1 >= argv.length || argv[i + 1].startsWith("--")) {
                        throw new UsageException(command, "option --" + name + " needs a value");
                    }
                    value = argv[++i];
                }
                args.values.put(name, value);
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

    public String get(String name, String defaultValue) {
        return values.getOrDefault(name, defaultValue);
    }

    public String required(String name) {
        String v = values.get(name);
        if (v == null) {
            throw new UsageException(command, "missing required option --" + name);
        }
        return v;
    }

    public int getInt(String name, int defaultValue) {
        String v = values.get(name);
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
        String v = values.getOrDefault(name, defaultValue);
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
