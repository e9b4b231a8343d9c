package dev.kiln.jobs;

import dev.kiln.engine.KilnException;

import java.io.PrintStream;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * {@code bin/kiln}: one entry point, one class per command. Exit codes: 0 success, 1 the command failed (one line
 * naming what and where; {@code --verbose} adds the stack trace), 2 bad command line (message and usage).
 */
public final class KilnCli {
    /** A subcommand of {@code bin/kiln}. */
    public interface Command {
        String name();

        String summary();

        /** Usage text with examples, printed by {@code --help} and after a usage error. */
        String usage();

        /** Runs the command; returns the exit code. */
        int run(String[] args, PrintStream out) throws Exception;
    }

    private static Map<String, Command> commands() {
        Map<String, Command> map = new LinkedHashMap<>();
        for (Command c : new Command[] {new DemoCommand(), new CompileCommand(), new RunCommand(), new BenchCommand(),
                new ValidateCommand(),
                new InspectCommand(),
                new ScoreJob()}) {
            map.put(c.name(), c);
        }
        return map;
    }

    public static void main(String[] args) {
        System.exit(run(args, System.out, System.err));
    }

    /** Runs a command line; returns the exit code (used by tests without exiting the JVM). */
    public static int run(String[] args, PrintStream out, PrintStream err) {
        Map<String, Command> commands = commands();
        if (args.length == 0 || args[0].equals("--help") || args[0].equals("-h") || args[0].equals("help")) {
            printHelp(commands, args.length == 0 ? err : out);
            return args.length == 0 ? 2 : 0;
        }
        Command command = commands.get(args[0]);
        if (command == null) {
            err.println("kiln: unknown command '" + args[0] + "'");
            printHelp(commands, err);
            return 2;
        }
        String[] rest = java.util.Arrays.copyOfRange(args, 1, args.length);
        boolean verbose = false;
        java.util.List<String> filtered = new java.util.ArrayList<>();
        for (String a : rest) {
            if (a.equals("--help") || a.equals("-h")) {
                out.println(command.usage());
                return 0;
            } else if (a.equals("--verbose")) {
                verbose = true;
            } else {
                filtered.add(a);
            }
        }
        try {
            return command.run(filtered.toArray(new String[0]), out);
        } catch (Args.UsageException e) {
            err.println("kiln " + command.name() + ": " + e.getMessage());
            err.println();
            err.println(command.usage());
            return 2;
        } catch (KilnException e) {
            err.println("kiln " + command.name() + ": " + e.getMessage());
            if (verbose) {
                e.printStackTrace(err);
            }
            return 1;
        } catch (UnsupportedOperationException e) {
            err.println("kiln " + command.name() + ": " + e.getMessage());
            return 1;
        } catch (Exception e) {
            KilnException cause = kilnCause(e);
            if (cause != null) {
                err.println("kiln " + command.name() + ": " + cause.getMessage());
                if (verbose) {
                    e.printStackTrace(err);
                }
                return 1;
            }
            err.println("kiln " + command.name() + ": failed: " + e);
            if (verbose) {
                e.printStackTrace(err);
            } else {
                err.println("(run with --verbose for the stack trace)");
            }
            return 1;
        }
    }

    /** The KilnException behind a wrapped failure (Spark wraps task failures), or null. */
    static KilnException kilnCause(Throwable e) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (t instanceof KilnException k) {
                return k;
            }
        }
        return null;
    }

    private static void printHelp(Map<String, Command> commands, PrintStream out) {
        out.println("Usage: bin/kiln COMMAND [OPTIONS]   (bin/kiln COMMAND --help for a command's options and examples)");
        out.println();
        out.println("Commands:");
        for (Command c : commands.values()) {
            out.printf("  %-9s %s%n", c.name(), c.summary());
        }
        out.println();
        out.println("Common options: --help, --verbose (stack traces on failure)");
    }
}
