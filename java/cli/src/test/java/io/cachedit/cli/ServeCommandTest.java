package io.cachedit.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code cachedit serve} as a real process (SIGTERM: graceful, exit 0) and {@code cachedit loadtest}. */
class ServeCommandTest {
  static final String MODEL = "../../models/fashion-flux";

  @Test
  void sigtermFinishesTheRunningRequestRefusesTheQueuedOneAndExitsZero(@TempDir Path dir) throws Exception {
    List<String> cmd = ChildJvm.cachedit("serve", "--port", "0", "--model", MODEL, "--output-dir", dir.toString(),
        "--max-batch", "1");
    Path log = dir.resolve("serve.log");  // a file, not a pipe: nothing is lost when the process exits
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
    try {
      URI base = null;
      Pattern listening = Pattern.compile("listening on (http://\\S+),");
      long deadline = System.nanoTime() + Duration.ofSeconds(120).toNanos();
      while (true) {
        String out = Files.readString(log);
        Matcher m = listening.matcher(out);
        if (m.find() && out.contains("cachedit serve: ready")) {
          base = URI.create(m.group(1));
          break;
        }
        assertTrue(System.nanoTime() < deadline && p.isAlive(), "no ready line; output:\n" + out);
        Thread.sleep(20);
      }
      HttpClient client = HttpClient.newHttpClient();
      HttpRequest running = HttpRequest.newBuilder(base.resolve("/generate")).POST(HttpRequest.BodyPublishers.ofString(
          "{\"prompt\": \"sneaker\", \"num_inference_steps\": 150}")).build();
      CompletableFuture<HttpResponse<String>> first = client.sendAsync(running, HttpResponse.BodyHandlers.ofString());
      waitForRunning(client, base);
      CompletableFuture<HttpResponse<String>> second = client.sendAsync(running, HttpResponse.BodyHandlers.ofString());
      waitForQueued(client, base);
      p.destroy();  // SIGTERM
      assertTrue(p.waitFor(120, TimeUnit.SECONDS), "exited");
      assertEquals(0, p.exitValue(), "exit code; output:\n" + Files.readString(log));
      assertEquals(200, first.get(10, TimeUnit.SECONDS).statusCode(), "the running request finished");
      HttpResponse<String> refused = second.get(10, TimeUnit.SECONDS);
      assertEquals(503, refused.statusCode(), refused.body());
      assertTrue(refused.body().contains("shutting down"), refused.body());
      String out = Files.readString(log);
      assertTrue(out.contains("cachedit serve: stopping") && out.contains("cachedit serve: stopped"), out);
    } finally {
      p.destroyForcibly();
    }
  }

  private static void waitForRunning(HttpClient client, URI base) throws Exception {
    waitForMetric(client, base, "cachedit_requests_running 1.0");
  }

  private static void waitForQueued(HttpClient client, URI base) throws Exception {
    waitForMetric(client, base, "cachedit_queue_depth 1.0");
  }

  private static void waitForMetric(HttpClient client, URI base, String line) throws Exception {
    long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
    while (System.nanoTime() < deadline) {
      String m = client.send(HttpRequest.newBuilder(base.resolve("/metrics")).build(),
          HttpResponse.BodyHandlers.ofString()).body();
      if (m.contains(line)) {
        return;
      }
      Thread.sleep(10);
    }
    throw new AssertionError("metric never showed " + line);
  }

  @Test
  void badOptionsNameTheOption() {
    FashionCommandsTest.Run r = FashionCommandsTest.run("serve", "--max-queue", "0", "--model", MODEL);
    assertEquals(1, r.code());
    assertTrue(r.err().contains("--max-queue"), r.err());
    r = FashionCommandsTest.run("serve", "--cache", "fastest", "--model", MODEL);
    assertEquals(1, r.code());
    assertTrue(r.err().contains("preset"), r.err());
  }

  @Test
  void loadtestComparesBatchingAndChecksEveryImage(@TempDir Path dir) {
    Path md = dir.resolve("serve.md");
    FashionCommandsTest.Run r = FashionCommandsTest.run("loadtest", "--model", MODEL, "--clients", "8", "--requests",
        "24", "--distinct", "6", "--steps", "10", "--mix", "uncached", "--max-batch", "1,8", "--out", md.toString());
    assertEquals(0, r.code(), r.out() + r.err());
    assertTrue(r.out().contains("| uncached | 1 | 8 | 24 |"), r.out());
    assertTrue(r.out().contains("max batch 8 gives"), r.out());
  }
}
