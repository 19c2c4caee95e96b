package io.cachedit.server;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.cachedit.fashion.BundledModel;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Queueing, batching, async jobs, cancellation, shutdown and a concurrent load, over real HTTP. */
class ServerLoadTest {
  @TempDir
  Path out;

  private ImageServer start(int maxQueue, int maxBatch, int windowMs) throws InterruptedException {
    ImageServer s = ImageServer.start(ServerOptions.defaults(ImageServerTest.MODEL).withPort(0).withOutputDir(out)
        .withQueue(maxQueue, maxBatch, Duration.ofMillis(windowMs)));
    s.awaitReady(Duration.ofMinutes(2));
    return s;
  }

  private static JsonNode waitFor(Http http, String id, String... states) throws InterruptedException {
    long deadline = System.nanoTime() + Duration.ofMinutes(2).toNanos();
    while (true) {
      JsonNode j = http.get("/v1/jobs/" + id).json();
      for (String s : states) {
        if (j.get("status").asText().equals(s)) {
          return j;
        }
      }
      assertTrue(System.nanoTime() < deadline, "job " + id + " still " + j);
      Thread.sleep(5);
    }
  }

  private static String submit(Http http, String body) {
    Http.Answer a = http.post("/v1/jobs", body);
    assertEquals(202, a.status(), a.text());
    return a.json().get("id").asText();
  }

  @Test
  void jobsReportProgressQueueFillsAndCancellationFreesMemory() throws Exception {
    try (ImageServer server = start(2, 1, 0)) {
      Http http = new Http(server.uri());
      long before = io.cachedit.kernels.NativeScope.liveKeptHandles();
      String running = submit(http, "{\"prompt\": \"bag\", \"num_inference_steps\": 200, \"seed\": 1}");
      JsonNode r = waitFor(http, running, "running");
      assertEquals(200, r.get("progress").get("total").asInt());
      String q1 = submit(http, "{\"prompt\": \"bag\", \"num_inference_steps\": 200}");
      String q2 = submit(http, "{\"prompt\": \"bag\", \"num_inference_steps\": 200}");
      assertEquals("queued", http.get("/v1/jobs/" + q1).json().get("status").asText());
      Http.Answer full = http.post("/v1/jobs", "{\"prompt\": \"bag\"}");
      assertEquals(429, full.status(), full.text());
      assertTrue(Long.parseLong(full.header("Retry-After")) >= 1);
      assertTrue(full.json().get("detail").asText().contains("--max-queue"));
      Http.Answer sync = http.post("/generate", "{\"prompt\": \"bag\"}");
      assertEquals(429, sync.status());
      // cancel: a queued job at once, the running one at its next step
      assertEquals("cancelled", http.delete("/v1/jobs/" + q1).json().get("status").asText());
      waitFor(http, running, "running");
      Thread.sleep(50);
      assertEquals("cancelled", http.delete("/v1/jobs/" + running).json().get("status").asText());
      JsonNode after = waitFor(http, q2, "running");
      assertEquals("running", after.get("status").asText());
      JsonNode cancelled = http.get("/v1/jobs/" + running).json();
      assertTrue(cancelled.get("progress").get("step").asInt() < 200, cancelled.toString());
      assertEquals(409, http.delete("/v1/jobs/" + running).status());
      http.delete("/v1/jobs/" + q2);
      waitIdle(server);
      assertEquals(before, io.cachedit.kernels.NativeScope.liveKeptHandles(),
          "cancelled generations left tensors behind");
      String metrics = http.get("/metrics").text();
      assertTrue(metrics.contains("cachedit_generations_total{outcome=\"cancelled\"}"), metrics);
      assertTrue(metrics.contains("route=\"/v1/jobs/{id}\""), metrics);
      assertTrue(metrics.contains("status=\"429\""), metrics);
    }
  }

  private static void waitIdle(ImageServer server) throws InterruptedException {
    Http http = new Http(server.uri());
    for (int i = 0; i < 2000; i++) {
      String m = http.get("/metrics").text();
      if (m.contains("cachedit_requests_running 0.0") && m.contains("cachedit_queue_depth 0.0")) {
        return;
      }
      Thread.sleep(5);
    }
    throw new AssertionError("server not idle");
  }

  @Test
  void batchedRequestsKeepTheirOwnImages() throws Exception {
    try (ImageServer server = start(64, 8, 200); BundledModel ref = BundledModel.load(ImageServerTest.MODEL)) {
      io.cachedit.quant.BatchInvariance.apply(ref.transformer());
      Http http = new Http(server.uri());
      String blocker = submit(http, "{\"prompt\": \"coat\", \"num_inference_steps\": 60, \"cache\": \"dbcache\"}");
      waitFor(http, blocker, "running");
      List<String> ids = new ArrayList<>();
      String[] prompts = {"sneaker", "bag", "dress", "trouser"};
      for (int i = 0; i < 4; i++) {  // uncached and a static-mask preset: both batch
        ids.add(submit(http, "{\"prompt\": \"" + prompts[i] + "\", \"seed\": " + (10 + i) + ", \"num_images\": "
            + (1 + i % 2) + ", \"num_inference_steps\": 8, \"include_stats\": true}"));
        ids.add(submit(http, "{\"prompt\": \"" + prompts[i] + "\", \"seed\": " + (20 + i) + ", \"num_inference_steps\": 9,"
            + " \"cache\": \"quadratic-9\", \"include_stats\": true}"));
      }
      ids.add(submit(http, "{\"prompt\": \"bag\", \"seed\": 5, \"num_inference_steps\": 8, \"cache\": \"dbcache\","
          + " \"include_stats\": true}"));
      int maxBatch = 0;
      for (int k = 0; k < ids.size(); k++) {
        JsonNode j = waitFor(http, ids.get(k), "succeeded").get("result");
        int batch = j.get("stats").get("batch_requests").asInt();
        maxBatch = Math.max(maxBatch, batch);
        boolean threshold = k == ids.size() - 1;
        if (threshold) {
          assertEquals(1, batch, "a threshold-based cache setting runs alone");
        }
        int i = k / 2;
        boolean uncached = k % 2 == 0 && !threshold;
        String prompt = threshold ? "bag" : prompts[i];
        long seed = threshold ? 5 : uncached ? 10 + i : 20 + i;
        int n = uncached ? 1 + i % 2 : 1;
        int steps = threshold || uncached ? 8 : 9;
        String cache = threshold ? "dbcache" : uncached ? null : "quadratic-9";
        try (io.cachedit.fashion.Generation.Result alone = io.cachedit.fashion.Generation.run(ref, prompt, n, seed,
            steps, 4.0, cache == null ? null : io.cachedit.cache.CachePresets.require(cache), null)) {
          for (int m = 0; m < n; m++) {
            assertArrayEquals(io.cachedit.image.Images.encodePng(io.cachedit.image.Images.fromTensor(
                alone.images().select(0, m))), Base64.getDecoder().decode(j.get("images").get(m).asText()),
                "request " + k + " image " + m + " (batch of " + batch + ")");
          }
        }
      }
      assertTrue(maxBatch >= 3, "queued compatible requests were batched: largest batch " + maxBatch);
    }
  }

  @Test
  void concurrentMixedLoadGivesEveryRequestItsOwnImages() throws Exception {
    try (ImageServer server = start(64, 8, 5)) {
      LoadTest.Report r = new LoadTest(server.uri()).run(LoadTest.requests(24, 10, true, 1), 8, 200);
      System.out.println("load test: " + r.summary());
      assertEquals(200, r.requests());
      assertEquals(0, r.failed(), r.failures().toString());
      assertEquals(0, r.mismatched(), r.failures().toString());
      assertEquals(0, r.rejected(), "the queue (64) holds every client's request: no 429");
      assertEquals(0, r.handlesGained(), "native tensor handles leaked: " + r.summary());
    }
  }

  @Test
  void aFullQueueAnswers429AndRetriedClientsAllSucceed() throws Exception {
    try (ImageServer server = start(2, 1, 0)) {
      LoadTest.Report r = new LoadTest(server.uri()).run(LoadTest.requests(6, 6, false, 2), 8, 40);
      assertEquals(0, r.failed(), r.failures().toString());
      assertEquals(0, r.mismatched(), r.failures().toString());
      assertTrue(r.rejected() > 0, "8 clients against a queue of 2: some 429s");
    }
  }

  @Test
  void shutdownFinishesRunningWorkAndRefusesNew() throws Exception {
    ImageServer server = start(8, 1, 0);
    Http http = new Http(server.uri());
    String running = submit(http, "{\"prompt\": \"sandal\", \"num_inference_steps\": 40, \"seed\": 4}");
    String queued = submit(http, "{\"prompt\": \"sandal\", \"num_inference_steps\": 40}");
    waitFor(http, running, "running");
    Thread stopper = new Thread(server::close);
    stopper.start();
    Thread.sleep(20);
    stopper.join(60_000);
    assertTrue(!stopper.isAlive(), "close() returned");
    // the HTTP server is gone; the job table is in the server object: its jobs finished or were cancelled
    assertEquals(Job.State.SUCCEEDED, server.jobState(running));
    assertEquals(Job.State.CANCELLED, server.jobState(queued));
  }
}
