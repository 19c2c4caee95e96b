package io.cachedit.server;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.cachedit.cache.CachePresets;
import io.cachedit.fashion.BundledModel;
import io.cachedit.fashion.Generation;
import io.cachedit.image.Images;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Base64;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Every route and its errors over real HTTP, against the bundled model. */
class ImageServerTest {
  static final Path MODEL = Path.of("../../models/fashion-flux");
  @TempDir
  static Path out;
  static ImageServer server;
  static Http http;
  static BundledModel reference;

  @BeforeAll
  static void start() throws Exception {
    server = ImageServer.start(ServerOptions.defaults(MODEL).withPort(0).withOutputDir(out));
    http = new Http(server.uri());
    Http.Answer early = http.get("/health");
    assertTrue(early.status() == 503 && early.text().equals("Model not loaded") || early.status() == 200,
        early.text());
    server.awaitReady(Duration.ofMinutes(2));
    reference = BundledModel.load(MODEL);
    io.cachedit.quant.BatchInvariance.apply(reference.transformer());  // as the server's instances
  }

  @AfterAll
  static void stop() {
    if (server != null) {
      server.close();
    }
    if (reference != null) {
      reference.close();
    }
  }

  /** PNG bytes of image {@code index} of the same request made directly through the library. */
  static byte[] alone(String prompt, int n, long seed, int steps, double guidance, String cache, int index) {
    try (Generation.Result r = Generation.run(reference, prompt, n, seed, steps, guidance,
        cache == null ? null : CachePresets.get(cache).orElse(null), null)) {
      return Images.encodePng(Images.fromTensor(r.images().select(0, index)));
    }
  }

  @Test
  void infoRoutes() {
    assertEquals("OK", http.get("/health").text());
    JsonNode models = http.get("/v1/models").json();
    assertEquals("list", models.get("object").asText());
    assertEquals("fashion-flux", models.get("data").get(0).get("id").asText());
    JsonNode info = http.get("/get_model_info").json();
    assertTrue(info.get("is_loaded").asBoolean());
    assertEquals("cpu", info.get("device").asText());
    assertFalse(info.get("enable_cache").asBoolean());
    assertEquals("{\"message\":\"Cache flushed successfully\"}", http.post("/flush_cache", "").text());
  }

  @Test
  void generateEqualsTheLibrary() {
    Http.Answer a = http.post("/generate", "{\"prompt\": \"sneaker\", \"seed\": 7, \"num_images\": 2, "
        + "\"num_inference_steps\": 6, \"cache\": \"dbcache\", \"include_stats\": true, \"include_trace\": true}");
    assertEquals(200, a.status(), a.text());
    JsonNode j = a.json();
    assertEquals(2, j.get("images").size());
    for (int i = 0; i < 2; i++) {
      assertArrayEquals(alone("sneaker", 2, 7, 6, 4.0, "dbcache", i),
          Base64.getDecoder().decode(j.get("images").get(i).asText()), "image " + i);
    }
    JsonNode stats = j.get("stats").get("cache_stats");
    assertTrue(stats.size() >= 1);
    assertTrue(stats.get(0).has("cache_options"));
    assertTrue(stats.get(0).get("cached_steps").isArray());
    assertTrue(stats.get(0).get("decisions").size() > 0);
    assertEquals(7, j.get("seed").asLong());
    assertTrue(j.get("time_cost").asDouble() > 0);
    assertNotNull(j.get("inference_start_time"));
  }

  @Test
  void errors() {
    Http.Answer unknown = http.post("/generate", "{\"prompt\": \"bag\", \"colour\": 1}");
    assertEquals(400, unknown.status());
    assertEquals("colour", unknown.json().get("field").asText());
    Http.Answer range = http.post("/generate", "{\"prompt\": \"bag\", \"width\": 30}");
    assertEquals(400, range.status());
    assertTrue(range.json().get("detail").asText().contains("multiple of 4"), range.text());
    assertEquals("num_inference_steps",
        http.post("/generate", "{\"prompt\": \"bag\", \"num_inference_steps\": 0}").json().get("field").asText());
    assertEquals("prompt", http.post("/generate", "{\"prompt\": \"cat\"}").json().get("field").asText());
    assertEquals("prompt", http.post("/generate", "{}").json().get("field").asText());
    assertEquals("cache", http.post("/generate", "{\"prompt\": \"bag\", \"cache\": \"fastest\"}").json().get("field")
        .asText());
    Http.Answer cacheKey = http.post("/generate", "{\"prompt\": \"bag\", \"cache\": {\"cache_config\": "
        + "{\"residual_diff_threshold\": -1}}}");
    assertEquals(400, cacheKey.status(), cacheKey.text());
    assertTrue(cacheKey.json().get("field").asText().startsWith("cache"), cacheKey.text());
    Http.Answer mask = http.post("/generate", "{\"prompt\": \"bag\", \"cache\": \"quadratic-9\", "
        + "\"num_inference_steps\": 6}");
    assertEquals(400, mask.status(), mask.text());
    assertTrue(mask.json().get("detail").asText().contains("num_inference_steps 6"), mask.text());
    assertEquals(400, http.post("/generate", "{\"prompt\": \"bag\",}").status());
    assertEquals(400, http.post("/generate", "{\"prompt\": \"bag\", \"prompt\": \"coat\"}").status());
    assertEquals("num_frames", http.post("/generate", "{\"prompt\": \"bag\", \"num_frames\": 4}").json().get("field")
        .asText());
    Http.Answer big = http.post("/generate", new byte[(int) ServerOptions.DEFAULT_MAX_BODY_BYTES + 1]);
    assertEquals(413, big.status(), big.text());
    assertEquals(404, http.get("/nope").status());
    assertTrue(http.get("/nope").json().get("detail").asText().contains("no route"));
    assertEquals(404, http.get("/v1/jobs/unknown").status());
    JsonNode openAi = http.post("/v1/images/generations", "{\"prompt\": \"bag\", \"size\": \"1024\"}").json();
    assertEquals("size", openAi.get("error").get("param").asText());
    assertEquals("invalid_request_error", openAi.get("error").get("type").asText());
  }

  @Test
  void openAiRoute() {
    Http.Answer b64 = http.post("/v1/images/generations", "{\"prompt\": \"dress\", \"n\": 1, \"size\": \"28x28\", "
        + "\"response_format\": \"b64_json\", \"user\": \"u1\", \"seed\": 3, \"num_inference_steps\": 5}");
    assertEquals(200, b64.status(), b64.text());
    assertArrayEquals(alone("dress", 1, 3, 5, 4.0, null, 0),
        Base64.getDecoder().decode(b64.json().get("data").get(0).get("b64_json").asText()));
    Http.Answer url = http.post("/v1/images/generations", "{\"prompt\": \"dress\", \"response_format\": \"url\", "
        + "\"seed\": 3, \"num_inference_steps\": 5}");
    assertEquals(200, url.status(), url.text());
    String u = url.json().get("data").get(0).get("url").asText();
    Http.Answer png = http.get(java.net.URI.create(u).getPath());
    assertEquals(200, png.status());
    assertEquals("image/png", png.header("Content-Type"));
    assertArrayEquals(alone("dress", 1, 3, 5, 4.0, null, 0), png.response().body());
  }

  @Test
  void pathOutput() throws Exception {
    Http.Answer a = http.post("/generate", "{\"prompt\": \"coat\", \"seed\": 1, \"num_inference_steps\": 4, "
        + "\"output_format\": \"path\", \"output_dir\": \"runs/a\"}");
    assertEquals(200, a.status(), a.text());
    Path file = Path.of(a.json().get("images").get(0).asText());
    assertTrue(file.startsWith(out.toAbsolutePath().resolve("runs/a")), file.toString());
    assertArrayEquals(alone("coat", 1, 1, 4, 4.0, null, 0), java.nio.file.Files.readAllBytes(file));
    assertEquals("output_dir", http.post("/generate", "{\"prompt\": \"coat\", \"output_format\": \"path\", "
        + "\"output_dir\": \"../x\"}").json().get("field").asText());
  }

  @Test
  void metricsAreExposed() {
    http.get("/health");
    String m = http.get("/metrics").text();
    for (String name : List.of("cachedit_http_requests_total", "cachedit_http_request_duration_seconds_bucket",
        "cachedit_queue_depth", "cachedit_native_tensor_handles", "cachedit_jvm_heap_committed_bytes", "cachedit_process_resident_bytes", "cachedit_cached_step_ratio")) {
      assertTrue(m.contains(name), name + " missing from\n" + m);
    }
    assertTrue(m.contains("route=\"/health\""), m);
  }

  @Test
  void aFailedWriteIs500AndTheServerStaysUp() throws Exception {
    java.nio.file.Files.writeString(out.resolve("blocked"), "a file where a folder is wanted");
    Http.Answer a = http.post("/generate", "{\"prompt\": \"coat\", \"num_inference_steps\": 2, "
        + "\"output_format\": \"path\", \"output_dir\": \"blocked/x\"}");
    assertEquals(500, a.status(), a.text());
    assertTrue(a.json().get("detail").asText().contains("cannot write"), a.text());
    assertEquals("output_dir", a.json().get("field").asText());
    assertEquals(200, http.post("/generate", "{\"prompt\": \"coat\", \"num_inference_steps\": 2}").status());
  }

  @Test
  void aModelThatDoesNotLoadAnswers503(@TempDir Path empty) throws Exception {
    try (ImageServer broken = ImageServer.start(ServerOptions.defaults(empty).withPort(0).withOutputDir(out))) {
      Http h = new Http(broken.uri());
      for (int i = 0; i < 500 && broken.loadError() == null; i++) {
        Thread.sleep(10);
      }
      Http.Answer health = h.get("/health");
      assertEquals(503, health.status());
      assertTrue(health.text().startsWith("Model failed to load: "), health.text());
      Http.Answer gen = h.post("/generate", "{\"prompt\": \"coat\"}");
      assertEquals(503, gen.status());
      assertEquals("5", gen.header("Retry-After"));
      assertFalse(h.get("/get_model_info").json().get("is_loaded").asBoolean());
    }
  }

  @Test
  void acceptImagePngReturnsThePngItselfAndRefusesSeveralImagesBeforeQueueing() throws Exception {
    java.net.http.HttpResponse<byte[]> png = java.net.http.HttpClient.newHttpClient().send(
        java.net.http.HttpRequest.newBuilder(server.uri().resolve("/generate")).header("Accept", "image/png")
            .POST(java.net.http.HttpRequest.BodyPublishers.ofString("{\"prompt\": \"bag\", \"seed\": 2, "
                + "\"num_inference_steps\": 3}")).build(), java.net.http.HttpResponse.BodyHandlers.ofByteArray());
    assertEquals(200, png.statusCode());
    assertEquals("2", png.headers().firstValue("X-Seed").orElse(null));
    assertArrayEquals(alone("bag", 1, 2, 3, 4.0, null, 0), png.body());
    java.net.http.HttpResponse<String> two = java.net.http.HttpClient.newHttpClient().send(
        java.net.http.HttpRequest.newBuilder(server.uri().resolve("/generate")).header("Accept", "image/png")
            .POST(java.net.http.HttpRequest.BodyPublishers.ofString("{\"prompt\": \"bag\", \"num_images\": 2}"))
            .build(), java.net.http.HttpResponse.BodyHandlers.ofString());
    assertEquals(400, two.statusCode(), two.body());
    assertTrue(two.body().contains("\"field\":\"num_images\""), two.body());
  }
}
