package io.cachedit.fashion;

import io.cachedit.CacheDit;
import io.cachedit.CacheHandle;
import io.cachedit.cache.CacheOptions;
import io.cachedit.cache.CacheStats;
import io.cachedit.kernels.NativeScope;
import io.cachedit.pipeline.FluxPipeline;
import java.util.List;
import java.util.function.IntConsumer;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;

/** One timed generation with the bundled model, cached or not. */
public final class Generation {
  private Generation() {}

  /** One generation's images (owned: close the result), wall time and per-list cache statistics. */
  public static final class Result implements AutoCloseable {
    private final NativeScope owner = NativeScope.owner("generation result");
    private final Tensor images;
    private final double seconds;
    private final List<CacheStats> stats;

    /**
     * @param images [n, 1, 28, 28] in [-1, 1]; the result keeps its own handle
     * @param seconds wall time of the pipeline call
     * @param stats per cached block list (empty when uncached)
     */
    public Result(Tensor images, double seconds, List<CacheStats> stats) {
      this.images = owner.keep(images);
      this.seconds = seconds;
      this.stats = List.copyOf(stats);
    }

    public Tensor images() {
      owner.ensureOpen();
      return images;
    }

    public double seconds() {
      return seconds;
    }

    public List<CacheStats> stats() {
      return stats;
    }

    /** Blocks an uncached run executes over blocks executed (1 when uncached). */
    public double idealSpeedup() {
      long total = stats.stream().mapToLong(CacheStats::blocksTotal).sum();
      long computed = stats.stream().mapToLong(CacheStats::blocksComputed).sum();
      return computed == 0 ? 1.0 : (double) total / computed;
    }

    public long cachedSteps() {
      return stats.stream().mapToLong(CacheStats::totalCachedSteps).max().orElse(0);
    }

    @Override
    public void close() {
      owner.close();
    }
  }

  /** The request the command line and benchmarks use: batched classifier-free guidance with the empty prompt. */
  public static FluxPipeline.Request request(BundledModel model, String prompt, int n, long seed, int steps,
      double guidance) {
    ClassTextEncoder te = model.textEncoder();
    boolean cfg = guidance > 1;
    return new FluxPipeline.Request(te.promptEmbeds(prompt), te.pooledPromptEmbeds(prompt),
        cfg ? te.promptEmbeds("") : null, cfg ? te.pooledPromptEmbeds("") : null, FashionMnist.SIDE,
        FashionMnist.SIDE, steps, 1.0, guidance, true, n, seed);
  }

  /** Generates {@code n} images of {@code prompt}; {@code options} null = uncached. */
  public static Result run(BundledModel model, String prompt, int n, long seed, int steps, double guidance,
      CacheOptions options, IntConsumer onStep) {
    FluxPipeline.Request request = request(model, prompt, n, seed, steps, guidance);
    try (PointerScope scope = new PointerScope(); NoGradGuard noGrad = new NoGradGuard()) {
      if (options == null) {
        long t0 = System.nanoTime();
        Tensor images = model.pipeline().generate(request, onStep);
        double s = (System.nanoTime() - t0) / 1e9;
        return new Result(images, s, List.of());
      }
      try (CacheHandle cache = CacheDit.enableCache(model.pipeline(), options)) {
        long t0 = System.nanoTime();
        Tensor images = model.pipeline().generate(request, onStep);
        double s = (System.nanoTime() - t0) / 1e9;
        return new Result(images, s, cache.stats());
      }
    }
  }
}
