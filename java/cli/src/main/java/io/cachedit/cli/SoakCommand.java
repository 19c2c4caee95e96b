package io.cachedit.cli;

import io.cachedit.cache.CachePresets;
import io.cachedit.fashion.BundledModel;
import io.cachedit.fashion.Generation;
import io.cachedit.kernels.NativeScope;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import org.bytedeco.javacpp.Pointer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code cachedit soak}: many generations in one JVM; resident memory and native handles must stay flat. */
@Command(name = "soak", mixinStandardHelpOptions = true,
    description = {"Runs --generations generations with the bundled model in this JVM, cycling through cache "
        + "settings (none, dbcache, taylorseer, quadratic-9, dbprune) and seeds, and reports resident memory and live "
        + "native tensor handles after --warmup generations and at the end (docs/reliability.md).",
        "Exits 1 if resident memory grew more than --max-growth or a handle leaked."})
final class SoakCommand implements Callable<Integer> {
  @Option(names = "--model", description = "model folder (default: the bundled one)")
  Path model;

  @Option(names = "--generations", description = "generations after the warm-up (default ${DEFAULT-VALUE})")
  int generations = 500;

  @Option(names = "--warmup", description = "generations before the first measurement (default ${DEFAULT-VALUE})")
  int warmup = 50;

  @Option(names = "--n", description = "images per generation (default ${DEFAULT-VALUE})")
  int n = 4;

  @Option(names = "--steps", description = "steps per generation (default ${DEFAULT-VALUE})")
  int steps = 28;

  @Option(names = "--max-growth", description = "allowed resident-memory growth after the warm-up, a fraction "
      + "(default ${DEFAULT-VALUE})")
  double maxGrowth = 0.02;

  static final List<String> CACHES = List.of("none", "dbcache", "taylorseer", "quadratic-9", "dbprune");

  @Override
  public Integer call() {
    if (generations < 1 || warmup < 0 || n < 1 || steps < 9) {
      throw io.cachedit.error.ConfigException.forField("--generations", "--generations >= 1, --warmup >= 0, --n >= 1"
          + " and --steps >= 9 (quadratic-9 computes 9 steps) are needed");
    }
    Path dir = model != null ? model : GenerateCommand.home().resolve(BundledModel.DEFAULT_DIR);
    long rssWarm = 0;
    long handlesWarm = 0;
    long t0 = System.nanoTime();
    try (BundledModel m = BundledModel.load(dir)) {
      for (int i = 0; i < warmup + generations; i++) {
        if (i == warmup) {
          System.gc();
          rssWarm = Pointer.physicalBytes();
          handlesWarm = NativeScope.liveKeptHandles();
        }
        String cache = CACHES.get(i % CACHES.size());
        String prompt = io.cachedit.fashion.FashionMnist.CLASSES.get(i % 10);
        Generation.run(m, prompt, n, i, steps, 4.0, CachePresets.get(cache).orElse(null), null).close();
      }
      System.gc();
      long rss = Pointer.physicalBytes();
      long handles = NativeScope.liveKeptHandles();
      double growth = (double) (rss - rssWarm) / rssWarm;
      System.out.printf(Locale.ROOT, "%d generations (%d x %d images, %d steps) after %d of warm-up in %.0f s: resident"
          + " %.1f MiB -> %.1f MiB (%+.2f%%), native tensor handles %d -> %d%n", generations, generations, n, steps,
          warmup, (System.nanoTime() - t0) / 1e9, rssWarm / 1048576.0, rss / 1048576.0, 100 * growth, handlesWarm,
          handles);
      return growth > maxGrowth || handles != handlesWarm ? 1 : 0;
    }
  }
}
