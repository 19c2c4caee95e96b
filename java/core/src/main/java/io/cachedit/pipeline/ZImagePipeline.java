package io.cachedit.pipeline;

import io.cachedit.models.common.DiffusionPipeline;
import io.cachedit.models.common.StepContext;
import io.cachedit.models.zimage.ZImageTransformer2DModel;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.IntConsumer;
import org.bytedeco.pytorch.Generator;
import org.bytedeco.pytorch.GeneratorOptional;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptions;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * Z-Image / Z-Image-Turbo sampling from caption features (diffusers' {@code ZImagePipeline} without the
 * text encoder and VAE): fp32 latents [B, 16, H/8, W/8], the schedule {@code linspace(1, 1/N, N)} with
 * the scheduler's shift (mu from the image sequence length when dynamic) and a final 0, the model fed
 * {@code 1 - sigma} and its output negated, classifier-free guidance (any scale > 0 with negative
 * captions) batched as [positive; negative] with {@code pos + scale * (pos - neg)}, optional truncation
 * (no CFG once {@code 1 - sigma} exceeds it) and renormalisation (the guided norm capped at that
 * multiple of the positive one). Returns latents. As diffusers 0.39+ runs it: earlier releases enabled
 * CFG only above 1 and ended the schedule with a second zero step.
 */
public final class ZImagePipeline implements DiffusionPipeline {
  private final GenerationGuard guard = new GenerationGuard();

  @Override
  public boolean generating() {
    return guard.busy();
  }

  public static final int VAE_SCALE_FACTOR = 8;

  private final ZImageTransformer2DModel transformer;
  private final FlowMatchEulerScheduler scheduler;
  private final AtomicLong generations = new AtomicLong();

  private final int vaeScaleFactor;

  public ZImagePipeline(ZImageTransformer2DModel transformer, FlowMatchEulerScheduler scheduler) {
    this(transformer, scheduler, VAE_SCALE_FACTOR);
  }

  /** With the downsampling of another VAE ({@code 2^(len(block_out_channels) - 1)}). */
  public ZImagePipeline(ZImageTransformer2DModel transformer, FlowMatchEulerScheduler scheduler, int vaeScaleFactor) {
    if (vaeScaleFactor < 1) {
      throw new IllegalArgumentException("vae scale factor must be >= 1, got " + vaeScaleFactor);
    }
    this.transformer = transformer;
    this.scheduler = scheduler;
    this.vaeScaleFactor = vaeScaleFactor;
  }

  /** Pixels per latent side. */
  public int vaeScaleFactor() {
    return vaeScaleFactor;
  }

  public ZImageTransformer2DModel transformer() {
    return transformer;
  }

  @Override
  public List<ZImageTransformer2DModel> transformers() {
    return List.of(transformer);
  }

  /**
   * @param promptEmbeds one [L_i, cap_feat_dim] per image
   * @param negativePromptEmbeds one per image, or null (then no CFG)
   * @param height pixels (multiple of 2 x VAE scale x patch size: 16 for Z-Image)
   * @param width pixels (same)
   * @param steps inference steps
   * @param guidanceScale CFG scale (Z-Image: 5; Turbo: 0 = off)
   * @param cfgNormalization cap of the guided norm relative to the positive one (0 = off)
   * @param cfgTruncation no CFG once {@code 1 - sigma} exceeds this (1 = never)
   * @param seed noise seed
   */
  public record Request(List<Tensor> promptEmbeds, List<Tensor> negativePromptEmbeds, int height, int width, int steps,
      double guidanceScale, double cfgNormalization, double cfgTruncation, long seed) {
    public Request {
      if (height <= 0 || width <= 0 || steps < 1) {
        throw new IllegalArgumentException("height and width must be positive, steps >= 1");
      }
      promptEmbeds = List.copyOf(promptEmbeds);
      if (negativePromptEmbeds != null && negativePromptEmbeds.size() != promptEmbeds.size()) {
        throw new IllegalArgumentException("need one negative prompt per prompt");
      }
    }
  }

  /** Runs the request and returns the final latents [B, 16, H/8, W/8] in fp32. */
  public Tensor generate(Request r, IntConsumer onStep) {
    long generation = generations.incrementAndGet();
    int batch = r.promptEmbeds().size();
    int unit = vaeScaleFactor * 2;  // the latent must split into 2x2 patches
    if (r.height() % unit != 0 || r.width() % unit != 0) {
      throw new IllegalArgumentException("height and width must be multiples of " + unit + ", got " + r.height() + "x"
          + r.width());
    }
    boolean cfg = r.guidanceScale() > 0 && r.negativePromptEmbeds() != null;
    int h = 2 * (r.height() / (vaeScaleFactor * 2));
    int w = 2 * (r.width() / (vaeScaleFactor * 2));
    int channels = transformer.config().inChannels();
    try (GenerationGuard.Held held = guard.enter("ZImagePipeline", transformers())) {
      return DenoisingLoop.run("ZImagePipeline", scope -> {
        Generator generator = torch.createCPUGenerator(r.seed());
        Tensor latents = torch.randn(new long[] {batch, channels, h, w}, new GeneratorOptional(generator),
            new TensorOptions(ScalarType.Float));
        List<Tensor> captions = new ArrayList<>();
        for (Tensor p : r.promptEmbeds()) {
          captions.add(scope.keep(p.to(transformer.dtype())));
        }
        if (cfg) {
          for (Tensor p : r.negativePromptEmbeds()) {
            captions.add(scope.keep(p.to(transformer.dtype())));
          }
        }
        double mu = scheduler.mu((h / 2) * (w / 2));
        double[] sigmas = scheduler.sigmas(r.steps(), FlowMatchEulerScheduler.linspaceToOneOver(r.steps()), mu);
        double[] timesteps = scheduler.timesteps(sigmas);
        DenoisingLoop.Velocity velocity = (i, latentsNow) -> {
          float tNorm = (1000f - (float) timesteps[i]) / 1000f;
          boolean applyCfg = cfg && !(r.cfgTruncation() <= 1 && tNorm > r.cfgTruncation());  // diffusers: guidance -> 0
          int calls = applyCfg ? 2 * batch : batch;
          Tensor x = latentsNow.to(transformer.dtype());
          List<Tensor> images = new ArrayList<>();
          for (int k = 0; k < calls; k++) {
            images.add(x.select(0, k % batch).unsqueeze(1));
          }
          Tensor t = torch.full(new long[] {calls}, new Scalar(tNorm));
          List<Tensor> out = transformer.forward(images, t, applyCfg ? captions : captions.subList(0, batch), 2, 1,
              new StepContext(generation, i, r.steps(), StepContext.Branch.SINGLE));
          TensorVector preds = new TensorVector();
          for (int k = 0; k < batch; k++) {
            Tensor pos = out.get(k).to(ScalarType.Float);
            Tensor pred = pos;
            if (applyCfg) {
              Tensor neg = out.get(batch + k).to(ScalarType.Float);
              pred = pos.add(pos.sub(neg).mul(new Scalar(r.guidanceScale())));
              if (r.cfgNormalization() > 0) {
                double posNorm = torch.linalg_vector_norm(pos).item_double();
                double newNorm = torch.linalg_vector_norm(pred).item_double();
                double max = posNorm * r.cfgNormalization();
                if (newNorm > max) {
                  pred = pred.mul(new Scalar(max / newNorm));
                }
              }
            }
            preds.push_back(pred.squeeze(1).neg());
          }
          return torch.stack(preds, 0);
        };
        return new DenoisingLoop.Plan(latents, sigmas, velocity, null);
      }, onStep);
    }
  }
}
