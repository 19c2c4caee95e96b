package io.cachedit.cli;

import io.cachedit.kernels.NativeRuntime;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.lang.management.ManagementFactory;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * {@code cachedit launch}: starts the ranks of one machine, as torchrun does: each a JVM running the
 * given cachedit command with {@code RANK}, {@code LOCAL_RANK}, {@code WORLD_SIZE},
 * {@code MASTER_ADDR} and {@code MASTER_PORT} set. Output lines are prefixed with the rank. When a
 * rank fails, the others are stopped and the exit code is the failed rank's.
 */
@Command(name = "launch", mixinStandardHelpOptions = true,
    description = {"Runs a cachedit command as N processes of one parallel group (docs/parallelism.md), e.g.",
        "  cachedit launch --nproc 2 -- generate --prompt sneaker --cache dbcache --parallel ulysses=2 --out s.png",
        "Several machines: run launch on each with --nnodes, --node-rank and --master-addr (rank 0's host), or set"
            + " RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT for each process yourself (torchrun, Slurm, Kubernetes)."})
final class LaunchCommand implements Callable<Integer> {
  private static final java.util.regex.Pattern GLOO_CONNECTED = java.util.regex.Pattern.compile(
      "\\[Gloo\\] Rank \\d+ is connected to \\d+ peer ranks\\. Expected number of connected peer ranks is : \\d+");

  @Option(names = "--nproc", required = true, description = "processes on this machine")
  int nproc;

  @Option(names = "--nnodes", description = "machines (default ${DEFAULT-VALUE})")
  int nnodes = 1;

  @Option(names = "--node-rank", description = "this machine's index, 0 .. nnodes-1 (default ${DEFAULT-VALUE})")
  int nodeRank = 0;

  @Option(names = "--master-addr", description = "host of rank 0 (default ${DEFAULT-VALUE})")
  String masterAddr = "127.0.0.1";

  @Option(names = "--master-port", description = "rendezvous port on rank 0's host (default: a free port when on"
      + " one machine, else 29500)")
  Integer masterPort;

  @Option(names = "--threads", description = "compute threads per process (default: cores / nproc, at least 1)")
  Integer threads;

  @Option(names = "--timeout", description = "collective timeout in seconds (default 120)")
  Double timeout;

  @Parameters(arity = "1..*", paramLabel = "COMMAND", description = "the cachedit command and its options, after --")
  List<String> command;

  @Override
  public Integer call() throws Exception {
    if (nproc < 1 || nproc > 256) {
      throw io.cachedit.error.ConfigException.forField("--nproc", "--nproc must be 1..256, got " + nproc);
    }
    if (nnodes < 1 || nodeRank < 0 || nodeRank >= nnodes) {
      throw io.cachedit.error.ConfigException.forField("--node-rank", "--node-rank must be in 0.." + (nnodes - 1)
          + " (--nnodes " + nnodes + "), got " + nodeRank);
    }
    if (command.get(0).equals("launch")) {
      throw io.cachedit.error.ConfigException.forField("COMMAND", "launch cannot launch itself");
    }
    int port = masterPort != null ? masterPort : nnodes == 1 ? freePort() : 29500;
    int perProcess = threads != null ? threads : Math.max(1, Runtime.getRuntime().availableProcessors() / nproc);
    NativeRuntime.initialize();  // extract libtorch once before the ranks load it at the same moment
    String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
    List<String> jvm = new ArrayList<>(ManagementFactory.getRuntimeMXBean().getInputArguments());
    jvm.removeIf(a -> a.startsWith("-agentlib") || a.startsWith("-javaagent"));
    List<Process> ranks = new ArrayList<>();
    List<Thread> pumps = new ArrayList<>();
    int world = nnodes * nproc;
    Thread reaper = new Thread(() -> ranks.forEach(Process::destroyForcibly), "cachedit-launch-reaper");
    Runtime.getRuntime().addShutdownHook(reaper);  // an interrupted launch leaves no rank behind
    try {
      for (int i = 0; i < nproc; i++) {
        int rank = nodeRank * nproc + i;
        List<String> cmd = new ArrayList<>();
        cmd.add(java);
        cmd.addAll(jvm);
        cmd.add("-cp");
        cmd.add(System.getProperty("java.class.path"));
        cmd.add(Main.class.getName());
        cmd.addAll(command);
        ProcessBuilder pb = new ProcessBuilder(cmd);
        Map<String, String> env = pb.environment();
        env.put("RANK", String.valueOf(rank));
        env.put("LOCAL_RANK", String.valueOf(i));
        env.put("WORLD_SIZE", String.valueOf(world));
        env.put("LOCAL_WORLD_SIZE", String.valueOf(nproc));
        env.put("MASTER_ADDR", masterAddr);
        env.put("MASTER_PORT", String.valueOf(port));
        env.put("OMP_NUM_THREADS", String.valueOf(perProcess));
        if (timeout != null) {
          env.put(io.cachedit.parallel.ProcessGroups.TIMEOUT_VARIABLE, String.valueOf(timeout));
        }
        Process p = pb.start();
        ranks.add(p);
        pumps.add(pump(p.getInputStream(), System.out, rank));
        pumps.add(pump(p.getErrorStream(), System.err, rank));
      }
      int failed = -1;
      int code = 0;
      List<Integer> running = new ArrayList<>();
      for (int i = 0; i < nproc; i++) {
        running.add(i);
      }
      while (!running.isEmpty() && failed < 0) {
        for (var it = running.iterator(); it.hasNext(); ) {
          int i = it.next();
          Process p = ranks.get(i);
          if (p.waitFor(50, TimeUnit.MILLISECONDS)) {
            it.remove();
            if (p.exitValue() != 0) {
              failed = i;
              code = p.exitValue();
              break;
            }
          }
        }
      }
      if (failed >= 0) {
        stopAll(ranks);
        joinAll(pumps);
        System.err.printf("cachedit launch: rank %d exited with code %d%s; stopped the other ranks%n",
            nodeRank * nproc + failed, code, code > 128 ? " (signal " + (code - 128) + ")" : "");
        return code;
      }
      joinAll(pumps);
      return 0;
    } finally {
      stopAll(ranks);
      try {
        Runtime.getRuntime().removeShutdownHook(reaper);
      } catch (IllegalStateException e) {
        // already shutting down: the hook runs
      }
    }
  }

  private static void stopAll(List<Process> ranks) throws InterruptedException {
    for (Process p : ranks) {
      if (p.isAlive()) {
        p.destroy();
      }
    }
    for (Process p : ranks) {
      if (!p.waitFor(5, TimeUnit.SECONDS)) {
        p.destroyForcibly().waitFor();
      }
    }
  }

  private static void joinAll(List<Thread> pumps) throws InterruptedException {
    for (Thread t : pumps) {
      t.join(2000);
    }
  }

  /** Copies a rank's output line by line, each prefixed with the rank. */
  private static Thread pump(InputStream in, PrintStream out, int rank) {
    Thread t = new Thread(() -> {
      try (BufferedReader r = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8))) {
        String line;
        while ((line = r.readLine()) != null) {
          if (GLOO_CONNECTED.matcher(line).matches()) {
            continue;  // Gloo reports each group's connections on stderr; the group's own log line says it joined
          }
          synchronized (out) {
            out.println("[rank " + rank + "] " + line);
          }
        }
      } catch (IOException e) {
        // the rank is gone; its exit code tells
      }
    }, "cachedit-launch-output-" + rank);
    t.setDaemon(true);
    t.start();
    return t;
  }

  static int freePort() throws IOException {
    try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getByName("127.0.0.1"))) {
      return s.getLocalPort();
    }
  }
}
