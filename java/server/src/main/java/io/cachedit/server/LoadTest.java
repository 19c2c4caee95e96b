package io.cachedit.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A load test of a running server over real HTTP: a set of distinct requests (mixed prompts, seeds,
 * sizes, image counts and cache settings) is generated once, one at a time, for reference; then
 * {@code clients} threads send {@code requests} of them concurrently, retrying after a 429 as its
 * {@code Retry-After} says, and every answer is checked byte for byte against the reference of its
 * request. Reports latency percentiles, throughput and the server's memory before and after.
 */
public final class LoadTest {
  /** Cache settings of the mixed load: presets (threshold-based, static-mask, pruning) and a config object. */
  static final List<String> MIXED_CACHES = List.of("\"none\"", "\"dbcache\"", "\"taylorseer\"", "\"quadratic-9\"",
      "\"dbprune\"", "{\"cache_config\": {\"Fn_compute_blocks\": 1, \"Bn_compute_blocks\": 0, "
          + "\"residual_diff_threshold\": 0.2, \"max_warmup_steps\": 2}}");

  /**
   * What the run measured.
   *
   * @param requests answered requests (after retries)
   * @param distinct distinct requests among them
   * @param clients concurrent clients
   * @param mismatched answers whose images differ from their request's reference (must be 0)
   * @param failed requests that did not end in 200 (must be 0)
   * @param rejected 429 answers (each retried)
   * @param p50Seconds median latency of answered requests, retries included
   * @param p95Seconds 95th percentile
   * @param seconds wall time of the concurrent phase
   * @param imagesPerSecond images answered per second in that phase
   * @param rssBefore server resident bytes after the reference pass (the warm-up)
   * @param rssAfter after the concurrent phase
   * @param nativeBefore tensor handles held by the server's native owners after the warm-up
   * @param nativeAfter after the concurrent phase (equal when nothing leaks)
   * @param failures the first few failure messages
   */
  public record Report(int requests, int distinct, int clients, int mismatched, int failed, int rejected,
      double p50Seconds, double p95Seconds, double seconds, double imagesPerSecond, long rssBefore, long rssAfter,
      long nativeBefore, long nativeAfter, List<String> failures) {
    public double rssGrowth() {
      return rssBefore == 0 ? 0 : (double) (rssAfter - rssBefore) / rssBefore;
    }

    /** Tensor handles gained over the run (0 when nothing leaks). */
    public long handlesGained() {
      return nativeAfter - nativeBefore;
    }

    /** One line for logs. */
    public String summary() {
      return String.format(java.util.Locale.ROOT, "%d requests (%d distinct) from %d clients in %.1f s: %.2f images/s,"
          + " p50 %.3f s, p95 %.3f s, %d x 429 (retried), %d mismatched, %d failed; RSS %+.2f%%, tensor handles %+d",
          requests, distinct, clients, seconds, imagesPerSecond, p50Seconds, p95Seconds, rejected, mismatched, failed,
          100 * rssGrowth(), handlesGained());
    }
  }

  private static final ObjectMapper JSON = new ObjectMapper();
  private static final Pattern GAUGE = Pattern.compile("(?m)^(cachedit_[a-z_]+) ([0-9.eE+-]+)$");

  private final URI server;
  private final HttpClient client = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();

  public LoadTest(URI server) {
    this.server = server;
  }

  /**
   * The distinct requests of a load: {@code count} bodies for {@code /generate}, drawn from {@code seed}.
   *
   * @param mixed mixed cache settings, sizes 28 and 32 and 1-2 images; otherwise uncached, 28 px, 1 image
   */
  public static List<String> requests(int count, int steps, boolean mixed, long seed) {
    Random r = new Random(seed);
    String[] prompts = {"t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
        "ankle boot"};
    List<String> out = new ArrayList<>();
    for (int i = 0; i < count; i++) {
      String cache = mixed ? MIXED_CACHES.get(i % MIXED_CACHES.size()) : "\"none\"";
      int side = mixed && r.nextInt(3) == 0 ? 32 : 28;
      int n = mixed && r.nextInt(4) == 0 ? 2 : 1;
      out.add(String.format(java.util.Locale.ROOT, "{\"prompt\": \"%s\", \"seed\": %d, \"width\": %d, \"height\": %d, "
          + "\"num_images\": %d, \"num_inference_steps\": %d, \"cache\": %s}", prompts[r.nextInt(prompts.length)],
          r.nextInt(1_000_000), side, side, n, steps, cache));
    }
    return out;
  }

  /**
   * Runs the load: references first (one at a time), a concurrent warm-up of a quarter of {@code total}
   * requests (at least two per client; batches reach their full size, so memory reaches its working
   * level), then the {@code total} measured requests from {@code clients} threads. Every answer of both
   * concurrent phases is checked.
   */
  public Report run(List<String> distinct, int clients, int total) throws InterruptedException {
    List<List<String>> reference = new ArrayList<>();
    for (String body : distinct) {
      Answer a = send(body);
      if (a.status != 200) {
        throw new IllegalStateException("reference request failed with " + a.status + ": " + a.text() + "\n" + body);
      }
      reference.add(images(a.json()));
    }
    Report warm = phase(distinct, reference, clients, Math.max(2 * clients, total / 4), null);
    return phase(distinct, reference, clients, total, warm);
  }

  private Report phase(List<String> distinct, List<List<String>> reference, int clients, int total, Report warm)
      throws InterruptedException {
    double[] before = memory();
    AtomicInteger next = new AtomicInteger();
    AtomicInteger mismatched = new AtomicInteger();
    AtomicInteger failed = new AtomicInteger();
    AtomicInteger rejected = new AtomicInteger();
    AtomicInteger images = new AtomicInteger();
    ConcurrentLinkedQueue<Double> latencies = new ConcurrentLinkedQueue<>();
    ConcurrentLinkedQueue<String> failures = new ConcurrentLinkedQueue<>();
    List<Thread> threads = new ArrayList<>();
    long t0 = System.nanoTime();
    for (int c = 0; c < clients; c++) {
      Thread t = new Thread(() -> {
        for (int i = next.getAndIncrement(); i < total; i = next.getAndIncrement()) {
          int k = (int) ((i * 7919L) % distinct.size());  // a fixed, scrambled order: neighbours differ
          long start = System.nanoTime();
          Answer a;
          int tries = 0;
          while (true) {
            a = send(distinct.get(k));
            if (a.status != 429 || ++tries > 200) {
              break;
            }
            rejected.incrementAndGet();
            long wait = a.retryAfter() > 0 ? Math.min(a.retryAfter(), 5) * 1000L : 200;
            try {
              Thread.sleep(Math.min(wait, 500));  // Retry-After is an estimate; polling a little sooner is fair
            } catch (InterruptedException e) {
              return;
            }
          }
          latencies.add((System.nanoTime() - start) / 1e9);
          if (a.status != 200) {
            failed.incrementAndGet();
            if (failures.size() < 5) {
              failures.add(a.status + ": " + a.text());
            }
            continue;
          }
          List<String> got = images(a.json());
          images.addAndGet(got.size());
          if (!got.equals(reference.get(k))) {
            mismatched.incrementAndGet();
            if (failures.size() < 5) {
              failures.add("images differ from the reference of " + distinct.get(k));
            }
          }
        }
      }, "loadtest-client-" + c);
      threads.add(t);
      t.start();
    }
    for (Thread t : threads) {
      t.join();
    }
    double seconds = (System.nanoTime() - t0) / 1e9;
    double[] after = memory();
    double[] l = latencies.stream().mapToDouble(Double::doubleValue).sorted().toArray();
    if (warm != null) {  // wrong answers of the warm-up count too
      mismatched.addAndGet(warm.mismatched());
      failed.addAndGet(warm.failed());
      warm.failures().forEach(failures::add);
    }
    return new Report(l.length, distinct.size(), clients, mismatched.get(), failed.get(), rejected.get(),
        percentile(l, 50), percentile(l, 95), seconds, images.get() / seconds, (long) before[0], (long) after[0],
        (long) before[1], (long) after[1], List.copyOf(failures));
  }

  /** Resident and native bytes from the server's /metrics. */
  private double[] memory() {
    Answer a = get("/metrics");
    double rss = 0;
    double nat = 0;
    Matcher m = GAUGE.matcher(a.text());
    while (m.find()) {
      if (m.group(1).equals("cachedit_process_resident_bytes")) {
        rss = Double.parseDouble(m.group(2));
      } else if (m.group(1).equals("cachedit_native_tensor_handles")) {
        nat = Double.parseDouble(m.group(2));
      }
    }
    return new double[] {rss, nat};
  }

  static double percentile(double[] sorted, double p) {
    if (sorted.length == 0) {
      return Double.NaN;
    }
    double pos = p / 100 * (sorted.length - 1);
    int lo = (int) Math.floor(pos);
    int hi = Math.min(sorted.length - 1, lo + 1);
    return sorted[lo] + (pos - lo) * (sorted[hi] - sorted[lo]);
  }

  private static List<String> images(JsonNode answer) {
    List<String> out = new ArrayList<>();
    answer.get("images").forEach(n -> out.add(n.asText()));
    return out;
  }

  private record Answer(int status, byte[] body, long retryAfter) {
    String text() {
      return new String(body, java.nio.charset.StandardCharsets.UTF_8);
    }

    JsonNode json() {
      try {
        return JSON.readTree(body);
      } catch (IOException e) {
        throw new IllegalStateException("not JSON: " + text());
      }
    }
  }

  private Answer send(String body) {
    return exchange(HttpRequest.newBuilder(server.resolve("/generate")).header("Content-Type", "application/json")
        .POST(HttpRequest.BodyPublishers.ofString(body)));
  }

  private Answer get(String path) {
    return exchange(HttpRequest.newBuilder(server.resolve(path)).GET());
  }

  private Answer exchange(HttpRequest.Builder b) {
    try {
      HttpResponse<byte[]> r = client.send(b.timeout(Duration.ofMinutes(5)).build(),
          HttpResponse.BodyHandlers.ofByteArray());
      long retry = r.headers().firstValue("Retry-After").map(Long::parseLong).orElse(0L);
      return new Answer(r.statusCode(), r.body(), retry);
    } catch (IOException e) {
      return new Answer(-1, ("transport error: " + e).getBytes(java.nio.charset.StandardCharsets.UTF_8), 0);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return new Answer(-1, "interrupted".getBytes(java.nio.charset.StandardCharsets.UTF_8), 0);
    }
  }
}
