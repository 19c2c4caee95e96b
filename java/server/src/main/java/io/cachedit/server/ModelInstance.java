package io.cachedit.server;

import io.cachedit.CacheDit;
import io.cachedit.CacheHandle;
import io.cachedit.cache.CacheStats;
import io.cachedit.fashion.BundledModel;
import io.cachedit.fashion.ClassTextEncoder;
import io.cachedit.image.Images;
import io.cachedit.pipeline.FluxPipeline;
import io.cachedit.quant.BatchInvariance;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.IntConsumer;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;

/**
 * One loaded copy of the model, used by one worker thread at a time: a generation owns the instance,
 * and with it the cache context, from its first step to its last.
 */
final class ModelInstance implements AutoCloseable {
  /** What one generation of a batch produced for one of its requests. */
  record Output(List<byte[]> pngs, List<CacheStats> stats, double seconds, int batchImages) {}

  private final BundledModel model;

  private ModelInstance(BundledModel model) {
    this.model = model;
  }

  /**
   * Loads the model and makes its linear layers batch-invariant ({@link BatchInvariance}), so a request
   * gets the same image alone or batched with others.
   */
  static ModelInstance load(Path dir) {
    BundledModel model = BundledModel.load(dir);
    try {
      BatchInvariance.apply(model.transformer());
    } catch (RuntimeException e) {
      model.close();
      throw e;
    }
    return new ModelInstance(model);
  }

  ModelLimits limits() {
    return new ModelLimits(model.textEncoder().prompts(), io.cachedit.fashion.FashionMnist.SIDE,
        model.pipeline().pixelsPerToken());
  }

  /**
   * Generates every request of {@code batch} in one pipeline call: their prompts, negative prompts and
   * initial noise (each drawn from its own seed) stacked along the batch, under the batch's one cache
   * setting, enabled for this call only (a fresh context, closed after).
   */
  List<Output> generate(List<ImageRequest> batch, IntConsumer onStep) {
    ImageRequest first = batch.get(0);
    ClassTextEncoder te = model.textEncoder();
    FluxPipeline pipeline = model.pipeline();
    boolean cfg = first.guidance() > 1;
    try (PointerScope scope = new PointerScope(); NoGradGuard noGrad = new NoGradGuard()) {
      TensorVector prompts = new TensorVector();
      TensorVector pooled = new TensorVector();
      TensorVector negatives = new TensorVector();
      TensorVector negativesPooled = new TensorVector();
      TensorVector noise = new TensorVector();
      int images = 0;
      for (ImageRequest r : batch) {
        int n = r.numImages();
        prompts.push_back(rows(te.promptEmbeds(r.prompt()), n));
        pooled.push_back(rows(te.pooledPromptEmbeds(r.prompt()), n));
        if (cfg) {
          negatives.push_back(rows(te.promptEmbeds(r.negativePrompt()), n));
          negativesPooled.push_back(rows(te.pooledPromptEmbeds(r.negativePrompt()), n));
        }
        noise.push_back(pipeline.initialNoise(r.seed(), n, r.height(), r.width()));
        images += n;
      }
      FluxPipeline.Request request = new FluxPipeline.Request(torch.cat(prompts, 0), torch.cat(pooled, 0),
          cfg ? torch.cat(negatives, 0) : null, cfg ? torch.cat(negativesPooled, 0) : null, first.height(),
          first.width(), first.steps(), 1.0, first.guidance(), true, 1, first.seed(), torch.cat(noise, 0));
      Tensor out;
      List<CacheStats> stats;
      long t0 = System.nanoTime();
      if (first.cache().options() == null) {
        out = pipeline.generate(request, onStep);
        stats = List.of();
      } else {
        try (CacheHandle cache = CacheDit.enableCache(pipeline, first.cache().options())) {
          out = pipeline.generate(request, onStep);
          stats = cache.stats();
        }
      }
      double seconds = (System.nanoTime() - t0) / 1e9;
      List<Output> outputs = new ArrayList<>();
      int row = 0;
      for (ImageRequest r : batch) {
        List<byte[]> pngs = new ArrayList<>();
        for (int i = 0; i < r.numImages(); i++, row++) {
          pngs.add(Images.encodePng(Images.fromTensor(out.select(0, row))));
        }
        outputs.add(new Output(pngs, stats, seconds, images));
      }
      return outputs;
    }
  }

  /** {@code t} [1, ...] repeated to [n, ...]. */
  private static Tensor rows(Tensor t, int n) {
    return n == 1 ? t : t.repeat_interleave(n, new org.bytedeco.pytorch.LongOptional(0L),
        new org.bytedeco.pytorch.LongOptional());
  }

  @Override
  public void close() {
    model.close();
  }
}
