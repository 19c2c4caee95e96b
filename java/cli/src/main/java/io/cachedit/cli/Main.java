package io.cachedit.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** The {@code cachedit} command line. */
@Command(name = "cachedit", mixinStandardHelpOptions = true, version = "cachedit 0.1.0",
    description = "Hybrid block caching for Diffusion Transformers on the JVM.",
    subcommands = {ForwardCommand.class, TrainCommand.class, TrainClassifierCommand.class, LaunchCommand.class,
        ParallelBenchCommand.class, TensorCfgBenchCommand.class,
        MetricsCommand.class, GenerateCommand.class, BenchCommand.class, ServeCommand.class,
        LoadTestCommand.class})
public final class Main implements Runnable {
  @Override
  public void run() {
    new CommandLine(this).usage(System.out);
  }

  public static void main(String[] args) {
    System.exit(run(args));
  }

  /** Runs a command line and returns its exit code (0 ok, 1 error, 2 usage). */
  public static int run(String... args) {
    CommandLine cli = new CommandLine(new Main());
    cli.setExecutionExceptionHandler((e, cmd, parsed) -> {
      cmd.getErr().println("error: " + (e.getMessage() == null ? e.toString() : e.getMessage()));
      return 1;
    });
    return cli.execute(args);
  }
}
