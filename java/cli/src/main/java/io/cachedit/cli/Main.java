package io.cachedit.cli;

import io.cachedit.kernels.NativeRuntime;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/** The {@code cachedit} command line. */
@Command(name = "cachedit", mixinStandardHelpOptions = true, version = "cachedit 0.1.0",
    description = "Hybrid block caching for Diffusion Transformers on the JVM.",
    subcommands = {ForwardCommand.class, TrainCommand.class, TrainClassifierCommand.class, LaunchCommand.class,
        ParallelBenchCommand.class, TensorCfgBenchCommand.class,
        MetricsCommand.class, GenerateCommand.class, BenchCommand.class, ServeCommand.class,
        LoadTestCommand.class, SoakCommand.class, TokenizeCommand.class})
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
      cmd.getErr().println("error: " + oneLine(e, System.getenv("CACHEDIT_DEBUG") != null));
      return 1;
    });
    cli.setParameterExceptionHandler((e, a) -> {  // one line, as every other error; the usage on request
      CommandLine cmd = e.getCommandLine();
      cmd.getErr().println("error: " + oneLine(e, false) + " (see: cachedit " + cmd.getCommandSpec().qualifiedName(" ")
          .replaceFirst("^cachedit ?", "") + (cmd.getCommandSpec().name().equals("cachedit") ? "" : " ") + "--help)");
      return 2;
    });
    cli.setExecutionStrategy(parsed -> {
      CommandLine.ParseResult last = parsed;
      while (last.hasSubcommand()) {
        last = last.subcommand();
      }
      if (last != parsed && !last.isUsageHelpRequested() && !last.isVersionHelpRequested()
          && !(last.commandSpec().userObject() instanceof WithoutLibtorch)) {
        // One compute pool and its wait policy must be in place before anything loads libtorch; commands
        // create libtorch objects (a NoGradGuard, say) before they reach the library's own entry points.
        try {
          NativeRuntime.initialize();
        } catch (RuntimeException e) {
          throw new CommandLine.ExecutionException(last.commandSpec().commandLine(), e.getMessage(), e);
        }
      }
      return new CommandLine.RunLast().execute(parsed);
    });
    try {
      return cli.execute(args);
    } catch (OutOfMemoryError e) {  // picocli's handler sees exceptions only
      System.err.println("error: out of memory (" + e.getMessage() + "); give the JVM more with CACHEDIT_JAVA_OPTS="
          + "-Xmx..., or ask for less (fewer images, --n)");
      return 1;
    }
  }

  /** A command that never touches libtorch (so it need not load it before it runs). */
  interface WithoutLibtorch {}

  /**
   * The error as one line: libtorch's C++ errors carry a backtrace after their message ("Exception raised
   * from ..."), kept only with {@code CACHEDIT_DEBUG} set; an exception without a message is named by its
   * type and, where it has one, its cause's message.
   */
  static String oneLine(Throwable e, boolean debug) {
    if (e instanceof java.io.UncheckedIOException && e.getCause() instanceof java.nio.file.FileSystemException f
        && e.getMessage() != null && e.getMessage().equals(f.toString())) {
      e = f;
    }
    if (e instanceof java.nio.file.FileSystemException f) {  // their message is often only the path
      String what = f instanceof java.nio.file.NoSuchFileException ? "no such file or folder"
          : f instanceof java.nio.file.AccessDeniedException ? "permission denied"
          : f instanceof java.nio.file.NotDirectoryException ? "not a folder"
          : f instanceof java.nio.file.FileAlreadyExistsException ? "already exists"
          : f.getReason() != null ? f.getReason() : f.getClass().getSimpleName();
      return what + ": " + f.getFile() + (f.getOtherFile() != null ? " -> " + f.getOtherFile() : "");
    }
    String m = e.getMessage();
    if (m == null || m.isBlank()) {
      Throwable c = e.getCause();
      return e.getClass().getSimpleName() + (c != null && c.getMessage() != null ? ": " + oneLine(c, debug) : "");
    }
    if (debug) {
      return m;
    }
    int trace = m.indexOf("Exception raised from");
    String head = (trace >= 0 ? m.substring(0, trace) : m).strip();
    return head.replaceAll("\\s*\\R\\s*", " ");
  }
}
