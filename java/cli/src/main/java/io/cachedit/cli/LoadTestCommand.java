package io.cachedit.cli;

import io.cachedit.fashion.BundledModel;
import io.cachedit.server.ImageServer;
import io.cachedit.server.LoadTest;
import io.cachedit.server.ServerOptions;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code cachedit loadtest}: concurrent clients against the server, every image checked (docs/serving.md). */
@Command(name = "loadtest", mixinStandardHelpOptions = true,
    description = {"Load-tests cachedit serve over HTTP: each distinct request is generated once alone for "
        + "reference, then --clients threads send --requests of them concurrently (429s retried after Retry-After); "
        + "every image must equal its reference byte for byte. Reports latency p50/p95, throughput and memory.",
        "Without --url it starts the server in this JVM once per --max-batch value, alternating over --rounds, "
            + "so the batching gain is measured side by side."})
final class LoadTestCommand implements Callable<Integer> {
  @Option(names = "--url", description = "a running server (default: start one here per --max-batch value)")
  URI url;

  @Option(names = "--model", description = "model folder of the servers started here (default: the bundled one)")
  Path model;

  @Option(names = "--clients", description = "concurrent clients (default ${DEFAULT-VALUE})")
  int clients = 8;

  @Option(names = "--requests", description = "requests per run (default ${DEFAULT-VALUE})")
  int requests = 200;

  @Option(names = "--distinct", description = "distinct requests among them (default ${DEFAULT-VALUE})")
  int distinct = 24;

  @Option(names = "--steps", description = "denoising steps of every request (default ${DEFAULT-VALUE})")
  int steps = 28;

  @Option(names = "--mix", split = ",", description = "loads to run: mixed (cache settings, sizes, 1-2 images) "
      + "and/or uncached (default ${DEFAULT-VALUE})")
  List<String> mixes = List.of("mixed", "uncached");

  @Option(names = "--max-batch", split = ",", description = "server --max-batch values to compare (default "
      + "${DEFAULT-VALUE})")
  List<Integer> maxBatches = List.of(1, 8);

  @Option(names = "--max-queue", description = "server --max-queue (default ${DEFAULT-VALUE})")
  int maxQueue = 64;

  @Option(names = "--rounds", description = "interleaved rounds per setting (default ${DEFAULT-VALUE})")
  int rounds = 1;

  @Option(names = "--out", description = "also write the table as markdown to this file")
  Path out;

  @Override
  public Integer call() throws Exception {
    if (clients < 1 || requests < 1 || distinct < 1 || steps < 1 || rounds < 1) {
      throw new IllegalArgumentException("--clients, --requests, --distinct, --steps and --rounds must be >= 1");
    }
    for (String mix : mixes) {
      if (!mix.equals("mixed") && !mix.equals("uncached")) {
        throw io.cachedit.error.ConfigException.forField("--mix", "--mix " + mix + ": use mixed and/or uncached");
      }
    }
    List<String> rows = new ArrayList<>();
    Map<String, List<Double>> throughput = new LinkedHashMap<>();
    boolean failed = false;
    for (int round = 0; round < rounds; round++) {
      for (String mix : mixes) {
        List<String> bodies = LoadTest.requests(distinct, steps, mix.equals("mixed"), 1);
        for (int maxBatch : url != null ? List.of(0) : maxBatches) {
          LoadTest.Report r;
          if (url != null) {
            r = new LoadTest(url).run(bodies, clients, requests);
          } else {
            Path dir = model != null ? model : GenerateCommand.home().resolve(BundledModel.DEFAULT_DIR);
            Path outputs = Files.createTempDirectory("cachedit-loadtest");
            ServerOptions o = ServerOptions.defaults(dir).withPort(0).withOutputDir(outputs)
                .withQueue(maxQueue, maxBatch, Duration.ofMillis(10));
            try (ImageServer server = ImageServer.start(o)) {
              server.awaitReady(Duration.ofMinutes(5));
              r = new LoadTest(server.uri()).run(bodies, clients, requests);
            }
          }
          failed |= r.mismatched() > 0 || r.failed() > 0;
          String label = url != null ? "server" : Integer.toString(maxBatch);
          throughput.computeIfAbsent(mix + " " + label, k -> new ArrayList<>()).add(r.imagesPerSecond());
          String row = String.format(Locale.ROOT, "| %s | %s | %d | %d | %.1f | %.2f | %.3f | %.3f | %d | %d | %+.2f%% | "
              + "%+d |", mix, label, r.clients(), r.requests(), r.seconds(), r.imagesPerSecond(), r.p50Seconds(),
              r.p95Seconds(), r.rejected(), r.mismatched() + r.failed(), 100 * r.rssGrowth(), r.handlesGained());
          rows.add(row);
          System.out.println(row);
          r.failures().forEach(f -> System.err.println("  " + f));
        }
      }
    }
    StringBuilder md = new StringBuilder();
    md.append(String.format(Locale.ROOT, "%d clients, %d requests (%d distinct) of %d steps per run, %d round(s)%n%n",
        clients, requests, distinct, steps, rounds));
    md.append("| load | max batch | clients | requests | s | images/s | p50 s | p95 s | 429s | wrong or failed | RSS | "
        + "tensor handles |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    rows.forEach(r -> md.append(r).append('\n'));
    if (url == null && maxBatches.size() > 1) {
      md.append('\n');
      for (String mix : mixes) {
        double base = mean(throughput.get(mix + " " + maxBatches.get(0)));
        for (int b : maxBatches.subList(1, maxBatches.size())) {
          md.append(String.format(Locale.ROOT, "- %s: max batch %d gives %.2fx the throughput of max batch %d%n", mix,
              b, mean(throughput.get(mix + " " + b)) / base, maxBatches.get(0)));
        }
      }
    }
    System.out.print(md.substring(md.indexOf("\n\n") + 2));
    if (out != null) {
      Files.writeString(out, md.toString());
    }
    return failed ? 1 : 0;
  }

  private static double mean(List<Double> v) {
    return v.stream().mapToDouble(Double::doubleValue).average().orElse(Double.NaN);
  }
}
