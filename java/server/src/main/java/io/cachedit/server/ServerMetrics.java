package io.cachedit.server;

import io.cachedit.cache.CacheStats;
import io.prometheus.metrics.config.EscapingScheme;
import io.prometheus.metrics.core.metrics.Counter;
import io.prometheus.metrics.core.metrics.Gauge;
import io.prometheus.metrics.core.metrics.GaugeWithCallback;
import io.prometheus.metrics.core.metrics.Histogram;
import io.prometheus.metrics.expositionformats.PrometheusTextFormatWriter;
import io.prometheus.metrics.model.registry.PrometheusRegistry;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.List;
import org.bytedeco.javacpp.Pointer;

/**
 * The server's Prometheus metrics (prefix {@code cachedit_}), one registry per server: requests by
 * route and status, request latency, queue depth, generations, batch sizes, cached steps, native
 * and resident memory. docs/serving.md lists them.
 */
final class ServerMetrics {
  private final PrometheusRegistry registry = new PrometheusRegistry();
  private final Counter requests = Counter.builder().name("cachedit_http_requests_total")
      .help("HTTP requests by route template and status code").labelNames("route", "status").register(registry);
  private final Histogram latency = Histogram.builder().name("cachedit_http_request_duration_seconds")
      .help("HTTP request latency by route template (synchronous image routes include the generation)")
      .labelNames("route").classicOnly()
      .classicUpperBounds(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120).register(registry);
  private final Gauge queueDepth = Gauge.builder().name("cachedit_queue_depth")
      .help("requests waiting for a worker").register(registry);
  private final Histogram generationSeconds = Histogram.builder().name("cachedit_generation_seconds")
      .help("wall time of one generation (a batch of requests)").classicOnly()
      .classicUpperBounds(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64).register(registry);
  private final Histogram batchRequests = Histogram.builder().name("cachedit_batch_requests")
      .help("requests sharing one generation").classicOnly().classicUpperBounds(1, 2, 4, 8, 16, 32).register(registry);
  private final Counter images = Counter.builder().name("cachedit_images_generated_total")
      .help("images generated").register(registry);
  private final Counter generations = Counter.builder().name("cachedit_generations_total")
      .help("generations by outcome").labelNames("outcome").register(registry);
  private final Counter steps = Counter.builder().name("cachedit_transformer_steps_total")
      .help("denoising steps of cached generations, times cached block lists").register(registry);
  private final Counter cachedSteps = Counter.builder().name("cachedit_cached_steps_total")
      .help("of those, steps served from the cache").register(registry);

  ServerMetrics() {
    GaugeWithCallback.builder().name("cachedit_cached_step_ratio")
        .help("cached steps over steps of cached generations since start (0 before any)")
        .callback(cb -> cb.call(ratio())).register(registry);
    GaugeWithCallback.builder().name("cachedit_process_resident_bytes")
        .help("resident set size of the server process (native memory, tensors included, plus the JVM's)")
        .callback(cb -> cb.call(Pointer.physicalBytes())).register(registry);
    GaugeWithCallback.builder().name("cachedit_jvm_heap_committed_bytes")
        .help("Java heap committed: resident minus this is what native code (libtorch, kernels) holds, roughly")
        .callback(cb -> cb.call(java.lang.management.ManagementFactory.getMemoryMXBean().getHeapMemoryUsage()
            .getCommitted())).register(registry);
    GaugeWithCallback.builder().name("cachedit_native_tensor_handles")
        .help("tensor handles held by cachedit's native owners (weights, caches, results): flat when nothing leaks")
        .callback(cb -> cb.call(io.cachedit.kernels.NativeScope.liveKeptHandles())).register(registry);
  }

  /** Exposes the scheduler's count of requests in running generations. */
  void watchRunning(java.util.function.IntSupplier running) {
    GaugeWithCallback.builder().name("cachedit_requests_running")
        .help("requests in a running generation").callback(cb -> cb.call(running.getAsInt())).register(registry);
  }

  private double ratio() {
    double total = steps.get();
    return total == 0 ? 0 : cachedSteps.get() / total;
  }

  void request(String route, int status, double seconds) {
    requests.labelValues(route, Integer.toString(status)).inc();
    latency.labelValues(route).observe(seconds);
  }

  void queueDepth(int depth) {
    queueDepth.set(depth);
  }

  void generation(int requestCount, int imageCount, double seconds, int stepCount, List<CacheStats> stats) {
    generations.labelValues("succeeded").inc();
    generationSeconds.observe(seconds);
    batchRequests.observe(requestCount);
    images.inc(imageCount);
    for (CacheStats s : stats) {
      steps.inc(stepCount);
      cachedSteps.inc(s.cachedSteps().size());
    }
  }

  void cancelledGeneration() {
    generations.labelValues("cancelled").inc();
  }

  /** The Prometheus text exposition (version 0.0.4). */
  byte[] scrape() {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    try {
      new PrometheusTextFormatWriter(false).write(out, registry.scrape(), EscapingScheme.UNDERSCORE_ESCAPING);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return out.toByteArray();
  }

  static String contentType() {
    return PrometheusTextFormatWriter.CONTENT_TYPE;
  }
}
