package io.cachedit.server;

import io.cachedit.error.ConfigException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Objects;

/**
 * How {@code cachedit serve} runs; every field is a command-line option of the same name.
 *
 * @param modelDir the model folder (a cachedit model folder such as the bundled models/fashion-flux)
 * @param host the address to bind (127.0.0.1: this machine only)
 * @param port the TCP port (0: any free one, printed at start)
 * @param maxQueue requests that may wait for a worker; one more is refused with 429
 * @param maxBatch images one generation may hold when requests are batched (1: no batching)
 * @param batchWindow how long the oldest request waits for batch-mates when the queue has none
 * @param maxBodyBytes the largest request body; a larger one is refused with 413
 * @param workers model instances, each with its own worker thread (memory grows with each)
 * @param defaultCache the cache preset of requests without a {@code cache} field (null: none)
 * @param outputDir where {@code output_format: path} and OpenAI {@code url} images are written
 * @param shutdownGrace how long running generations may finish at shutdown before they are stopped
 * @param jobsKept finished async jobs kept for {@code GET /v1/jobs/{id}} (oldest dropped first)
 */
public record ServerOptions(Path modelDir, String host, int port, int maxQueue, int maxBatch, Duration batchWindow,
    long maxBodyBytes, int workers, String defaultCache, Path outputDir, Duration shutdownGrace, int jobsKept) {
  /** Default --max-body-bytes: 4 MiB. */
  public static final long DEFAULT_MAX_BODY_BYTES = 4L << 20;

  public ServerOptions {
    Objects.requireNonNull(modelDir, "modelDir");
    Objects.requireNonNull(host, "host");
    Objects.requireNonNull(batchWindow, "batchWindow");
    Objects.requireNonNull(outputDir, "outputDir");
    Objects.requireNonNull(shutdownGrace, "shutdownGrace");
    check(port >= 0 && port <= 65535, "--port", "--port " + port + " must be 0..65535 (0: any free port)");
    check(maxQueue >= 1 && maxQueue <= 100_000, "--max-queue", "--max-queue " + maxQueue + " must be 1..100000");
    check(maxBatch >= 1 && maxBatch <= 256, "--max-batch", "--max-batch " + maxBatch + " must be 1..256 images");
    check(!batchWindow.isNegative() && batchWindow.toMillis() <= 10_000, "--batch-window-ms",
        "--batch-window-ms must be 0..10000");
    check(maxBodyBytes >= 1024 && maxBodyBytes <= (1L << 30), "--max-body-bytes", "--max-body-bytes "
        + maxBodyBytes + " must be 1024..1073741824");
    check(workers >= 1 && workers <= 64, "--workers", "--workers " + workers + " must be 1..64");
    check(!shutdownGrace.isNegative(), "--shutdown-grace-s", "--shutdown-grace-s must be >= 0");
    check(jobsKept >= 1, "--jobs-kept", "--jobs-kept must be >= 1");
  }

  /** The defaults of {@code cachedit serve} for {@code modelDir}. */
  public static ServerOptions defaults(Path modelDir) {
    return new ServerOptions(modelDir, "127.0.0.1", 8000, 64, 8, Duration.ofMillis(10), DEFAULT_MAX_BODY_BYTES, 1,
        null, Path.of("outputs"), Duration.ofSeconds(30), 1000);
  }

  public ServerOptions withPort(int p) {
    return new ServerOptions(modelDir, host, p, maxQueue, maxBatch, batchWindow, maxBodyBytes, workers, defaultCache,
        outputDir, shutdownGrace, jobsKept);
  }

  public ServerOptions withQueue(int queue, int batch, Duration window) {
    return new ServerOptions(modelDir, host, port, queue, batch, window, maxBodyBytes, workers, defaultCache,
        outputDir, shutdownGrace, jobsKept);
  }

  public ServerOptions withOutputDir(Path dir) {
    return new ServerOptions(modelDir, host, port, maxQueue, maxBatch, batchWindow, maxBodyBytes, workers,
        defaultCache, dir, shutdownGrace, jobsKept);
  }

  private static void check(boolean ok, String field, String message) {
    if (!ok) {
      throw ConfigException.forField(field, message);
    }
  }
}
