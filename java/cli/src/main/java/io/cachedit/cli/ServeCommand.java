package io.cachedit.cli;

import io.cachedit.cache.CachePresets;
import io.cachedit.fashion.BundledModel;
import io.cachedit.server.ImageServer;
import io.cachedit.server.ServerOptions;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import sun.misc.Signal;

/** {@code cachedit serve}: the HTTP server (docs/serving.md). */
@Command(name = "serve", mixinStandardHelpOptions = true,
    description = {"Serves the model over HTTP: POST /generate, OpenAI's POST /v1/images/generations, async jobs "
        + "(/v1/jobs), GET /health, /v1/models, /get_model_info and /metrics (docs/serving.md).",
        "SIGTERM or Ctrl-C stops it gracefully: new requests are refused, queued ones cancelled, running ones "
            + "finish (up to --shutdown-grace-s), exit 0."})
final class ServeCommand implements Callable<Integer> {
  @Option(names = "--model", description = "model folder (default: the bundled models/fashion-flux)")
  Path model;

  @Option(names = "--host", description = "address to bind (default ${DEFAULT-VALUE}; 0.0.0.0 for every interface)")
  String host = "127.0.0.1";

  @Option(names = "--port", description = "TCP port, 0 for any free one (default ${DEFAULT-VALUE})")
  int port = 8000;

  @Option(names = "--max-queue", paramLabel = "N", description = "requests that may wait; one more gets 429 with "
      + "Retry-After (default ${DEFAULT-VALUE})")
  int maxQueue = 64;

  @Option(names = "--max-batch", paramLabel = "N", description = "images one generation may batch from compatible "
      + "requests, 1 = no batching (default ${DEFAULT-VALUE})")
  int maxBatch = 8;

  @Option(names = "--batch-window-ms", paramLabel = "MS", description = "how long a request waits for batch-mates "
      + "when none are queued (default ${DEFAULT-VALUE})")
  long batchWindowMs = 10;

  @Option(names = "--max-body-bytes", paramLabel = "BYTES", description = "largest request body; larger gets 413 "
      + "(default ${DEFAULT-VALUE})")
  long maxBodyBytes = ServerOptions.DEFAULT_MAX_BODY_BYTES;

  @Option(names = "--workers", paramLabel = "N", description = "model instances, one worker thread each "
      + "(default ${DEFAULT-VALUE})")
  int workers = 1;

  @Option(names = "--cache", completionCandidates = GenerateCommand.PresetNames.class, description = "cache preset "
      + "of requests without a cache field: ${COMPLETION-CANDIDATES} (default none)")
  String cache;

  @Option(names = "--output-dir", description = "where output_format=path and response_format=url images go "
      + "(default ${DEFAULT-VALUE})")
  Path outputDir = Path.of("outputs");

  @Option(names = "--shutdown-grace-s", paramLabel = "S", description = "how long running generations may finish "
      + "at shutdown (default ${DEFAULT-VALUE})")
  long shutdownGraceSeconds = 30;

  @Option(names = "--jobs-kept", paramLabel = "N", description = "finished async jobs kept for GET /v1/jobs/{id} "
      + "(default ${DEFAULT-VALUE})")
  int jobsKept = 1000;

  @Override
  public Integer call() throws Exception {
    if (cache != null) {
      CachePresets.get(cache);  // an unknown name fails here, naming the presets
    }
    Path dir = model != null ? model : GenerateCommand.home().resolve(BundledModel.DEFAULT_DIR);
    ServerOptions options = new ServerOptions(dir, host, port, maxQueue, maxBatch, Duration.ofMillis(batchWindowMs),
        maxBodyBytes, workers, cache, outputDir, Duration.ofSeconds(shutdownGraceSeconds), jobsKept);
    CountDownLatch stop = new CountDownLatch(1);
    Signal.handle(new Signal("TERM"), s -> stop.countDown());
    Signal.handle(new Signal("INT"), s -> stop.countDown());
    try (ImageServer server = ImageServer.start(options)) {
      System.out.println("cachedit serve: listening on " + server.uri() + ", loading " + dir);
      System.out.flush();
      Thread watch = new Thread(() -> {
        try {
          server.awaitReady(Duration.ofDays(1));
          System.out.println("cachedit serve: ready (" + workers + " worker" + (workers == 1 ? "" : "s")
              + ", max queue " + maxQueue + ", max batch " + maxBatch + ")");
        } catch (IllegalStateException e) {
          System.err.println("error: " + e.getMessage());
          stop.countDown();
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
        System.out.flush();
      }, "cachedit-ready");
      watch.setDaemon(true);
      watch.start();
      stop.await();
      System.out.println("cachedit serve: stopping (finishing running requests)");
      System.out.flush();
      if (server.loadError() != null) {
        return 1;
      }
    }
    System.out.println("cachedit serve: stopped");
    System.out.flush();
    return 0;
  }
}
