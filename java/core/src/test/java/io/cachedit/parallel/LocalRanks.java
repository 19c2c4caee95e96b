package io.cachedit.parallel;

import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * Starts {@link CpWorker} as {@code n} real JVM processes on 127.0.0.1 with torchrun's variables and
 * collects what each rank wrote. Processes still running at the deadline are killed (and reported).
 */
final class LocalRanks {
  private static final ObjectMapper JSON = new ObjectMapper();

  /** What the ranks did: exit codes (-1: killed at the deadline), their JSON lines and their logs. */
  record Run(int[] exitCodes, List<List<Map<String, Object>>> lines, List<String> logs, long millis) {
    String describe() {
      StringBuilder sb = new StringBuilder();
      for (int r = 0; r < logs.size(); r++) {
        String log = logs.get(r);
        sb.append("--- rank ").append(r).append(" exit ").append(exitCodes[r]).append(":\n")
            .append(log.length() > 6000 ? log.substring(log.length() - 6000) : log).append('\n');
      }
      return sb.toString();
    }
  }

  private LocalRanks() {}

  static int freePort() {
    try (ServerSocket s = new ServerSocket(0)) {
      return s.getLocalPort();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  static Run run(int n, String suite, Duration deadline, Map<String, String> env, Path dir) {
    try {
      int port = freePort();
      String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
      List<Process> procs = new ArrayList<>();
      long t0 = System.nanoTime();
      for (int r = 0; r < n; r++) {
        ProcessBuilder pb = new ProcessBuilder(java, "-Xmx768m", "-XX:+UseSerialGC",
            "-Dorg.bytedeco.javacpp.platform.extension=", "-cp", System.getProperty("java.class.path"),
            CpWorker.class.getName(), dir.toString(), suite);
        Map<String, String> e = pb.environment();
        e.put("RANK", String.valueOf(r));
        e.put("LOCAL_RANK", String.valueOf(r));
        e.put("WORLD_SIZE", String.valueOf(n));
        e.put("MASTER_ADDR", "127.0.0.1");
        e.put("MASTER_PORT", String.valueOf(port));
        e.put("OMP_NUM_THREADS", "1");
        e.put("OMP_WAIT_POLICY", "PASSIVE");
        e.putAll(env);
        pb.redirectErrorStream(true);
        pb.redirectOutput(dir.resolve("rank" + r + ".log").toFile());
        procs.add(pb.start());
      }
      int[] codes = new int[n];
      long end = System.nanoTime() + deadline.toNanos();
      for (int r = 0; r < n; r++) {
        Process p = procs.get(r);
        long left = Math.max(1, end - System.nanoTime());
        if (p.waitFor(left, TimeUnit.NANOSECONDS)) {
          codes[r] = p.exitValue();
        } else {
          codes[r] = -1;
        }
      }
      for (Process p : procs) {
        if (p.isAlive()) {
          p.destroyForcibly().waitFor();
        }
      }
      long millis = (System.nanoTime() - t0) / 1_000_000;
      List<List<Map<String, Object>>> lines = new ArrayList<>();
      List<String> logs = new ArrayList<>();
      for (int r = 0; r < n; r++) {
        List<Map<String, Object>> mine = new ArrayList<>();
        Path f = dir.resolve("rank" + r + ".jsonl");
        if (Files.exists(f)) {
          for (String line : Files.readAllLines(f)) {
            if (!line.isBlank()) {
              mine.add(JSON.readValue(line, new TypeReference<Map<String, Object>>() {}));
            }
          }
        }
        lines.add(mine);
        Path log = dir.resolve("rank" + r + ".log");
        logs.add(Files.exists(log) ? Files.readString(log) : "");
      }
      return new Run(codes, lines, logs, millis);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }
}
