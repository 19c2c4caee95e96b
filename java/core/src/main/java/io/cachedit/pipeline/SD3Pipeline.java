package io.cachedit.pipeline;

import io.cachedit.models.common.CfgParallel;
import io.cachedit.models.common.StepContext;
import io.cachedit.models.sd3.SD3Transformer2DModel;
import java.util.List;
import java.util.Set;
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
 * Stable Diffusion 3 / 3.5 sampling from prompt embeddings (diffusers' {@code StableDiffusion3Pipeline}
 * without encoders and VAE): latents [B, 16, H/8, W/8], the scheduler's default sigma schedule with its
 * shift (3.0 in the SD3 configs), classifier-free guidance batched as [negative; positive], optional
 * skip-layer guidance (SD3.5 Medium: layers 7, 8, 9, scale 2.8, steps 1%-20%). Returns latents.
 */
public final class SD3Pipeline extends CfgSpreadingPipeline {
  public static final int VAE_SCALE_FACTOR = 8;

  private final SD3Transformer2DModel transformer;
  private final FlowMatchEulerScheduler scheduler;
  private final AtomicLong generations = new AtomicLong();

  private final int vaeScaleFactor;

  public SD3Pipeline(SD3Transformer2DModel transformer, FlowMatchEulerScheduler scheduler) {
    this(transformer, scheduler, VAE_SCALE_FACTOR);
  }

  /** With the downsampling of another VAE ({@code 2^(len(block_out_channels) - 1)}). */
  public SD3Pipeline(SD3Transformer2DModel transformer, FlowMatchEulerScheduler scheduler, int vaeScaleFactor) {
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

  public SD3Transformer2DModel transformer() {
    return transformer;
  }

  @Override
  public List<SD3Transformer2DModel> transformers() {
    return List.of(transformer);
  }

  /**
   * @param promptEmbeds [B, S, joint_attention_dim]
   * @param pooledPromptEmbeds [B, pooled_projection_dim]
   * @param negativePromptEmbeds same shape, or null (then no CFG)
   * @param negativePooledPromptEmbeds same shape, or null
   * @param height pixels (multiple of 8 x patch size)
   * @param width pixels
   * @param steps inference steps
   * @param guidanceScale CFG scale (> 1 enables CFG)
   * @param skipGuidanceLayers skip-layer guidance layers (empty: off)
   * @param skipLayerGuidanceScale its scale
   * @param skipLayerGuidanceStart first step fraction it applies to (exclusive)
   * @param skipLayerGuidanceStop last step fraction (exclusive)
   * @param seed noise seed
   */
  public record Request(Tensor promptEmbeds, Tensor pooledPromptEmbeds, Tensor negativePromptEmbeds,
      Tensor negativePooledPromptEmbeds, int height, int width, int steps, double guidanceScale,
      Set<Integer> skipGuidanceLayers, double skipLayerGuidanceScale, double skipLayerGuidanceStart,
      double skipLayerGuidanceStop, long seed) {
    public Request {
      if (height <= 0 || width <= 0 || steps < 1) {
        throw new IllegalArgumentException("height, width and steps must be positive");
      }
      skipGuidanceLayers = skipGuidanceLayers == null ? Set.of() : Set.copyOf(skipGuidanceLayers);
    }

    /** Plain CFG, no skip-layer guidance. */
    public static Request of(Tensor prompt, Tensor pooled, Tensor negative, Tensor negativePooled, int height,
        int width, int steps, double guidanceScale, long seed) {
      return new Request(prompt, pooled, negative, negativePooled, height, width, steps, guidanceScale, Set.of(), 2.8,
          0.01, 0.2, seed);
    }
  }

  /** Runs the request and returns the final latents [B, C, H/8, W/8] (8: the VAE scale factor). */
  public Tensor generate(Request r, IntConsumer onStep) {
    int unit = vaeScaleFactor * transformer.config().patchSize();
    if (r.height() % unit != 0 || r.width() % unit != 0) {
      throw new IllegalArgumentException("height and width must be multiples of " + unit);
    }
    long generation = generations.incrementAndGet();
    int batch = (int) r.promptEmbeds().size(0);
    boolean cfg = r.guidanceScale() > 1 && r.negativePromptEmbeds() != null;
    int h = r.height() / vaeScaleFactor;
    int w = r.width() / vaeScaleFactor;
    try (GenerationGuard.Held held = guard.enter("SD3Pipeline", transformers())) {
      return DenoisingLoop.run("SD3Pipeline", scope -> {
        ScalarType dtype = transformer.dtype();
        Generator generator = torch.createCPUGenerator(r.seed());
        Tensor latents = torch.randn(new long[] {batch, transformer.config().inChannels(), h, w},
            new GeneratorOptional(generator), new TensorOptions(ScalarType.Float)).to(dtype);
        Tensor prompt = scope.keep(r.promptEmbeds().to(dtype));
        Tensor pooled = scope.keep(r.pooledPromptEmbeds().to(dtype));
        Tensor promptBoth = cfg ? scope.keep(torch.cat(new TensorVector(r.negativePromptEmbeds().to(dtype), prompt), 0))
            : null;
        Tensor pooledBoth = cfg ? scope.keep(torch.cat(new TensorVector(r.negativePooledPromptEmbeds().to(dtype),
            pooled), 0)) : null;
        double mu = Double.NaN;
        if (scheduler.useDynamicShifting()) {
          int p = transformer.config().patchSize();
          mu = scheduler.mu((h / p) * (w / p));
        }
        double[] sigmas = scheduler.sigmas(r.steps(), null, mu);
        double[] timesteps = scheduler.timesteps(sigmas);
        DenoisingLoop.Velocity velocity = (i, x) -> {
          if (!cfg) {
            return transformer.forward(x, prompt, pooled, torch.full(new long[] {batch}, new Scalar(timesteps[i])),
                Set.of(), new StepContext(generation, i, r.steps(), StepContext.Branch.SINGLE));
          }
          Tensor uncond;
          Tensor text;
          CfgParallel cfgp = cfgParallel;
          if (cfgp.active()) {  // each rank computes one branch of the batch [negative; positive]
            Tensor tb = torch.full(new long[] {batch}, new Scalar(timesteps[i]));
            Tensor[] b = cfgp.branches(
                () -> transformer.forward(x, prompt, pooled, tb, Set.of(),
                    new StepContext(generation, i, r.steps(), StepContext.Branch.COND)),
                () -> transformer.forward(x, promptBoth.narrow(0, 0, batch), pooledBoth.narrow(0, 0, batch), tb, Set.of(),
                    new StepContext(generation, i, r.steps(), StepContext.Branch.UNCOND)));
            text = b[0];
            uncond = b[1];
          } else {
            Tensor t = torch.full(new long[] {2L * batch}, new Scalar(timesteps[i]));
            Tensor both = transformer.forward(torch.cat(new TensorVector(x, x), 0), promptBoth, pooledBoth, t, Set.of(),
                new StepContext(generation, i, r.steps(), StepContext.Branch.SINGLE));
            uncond = both.narrow(0, 0, batch);
            text = both.narrow(0, batch, batch);
          }
          Tensor v = uncond.add(text.sub(uncond).mul(new Scalar(r.guidanceScale())));
          boolean skip = !r.skipGuidanceLayers().isEmpty() && i > r.steps() * r.skipLayerGuidanceStart()
              && i < r.steps() * r.skipLayerGuidanceStop();
          if (skip) {
            Tensor skipped = transformer.forward(x, prompt, pooled, torch.full(new long[] {batch},
                new Scalar(timesteps[i])), r.skipGuidanceLayers(),
                new StepContext(generation, i, r.steps(), StepContext.Branch.BYPASS));
            v = v.add(text.sub(skipped).mul(new Scalar(r.skipLayerGuidanceScale())));
          }
          return v;
        };
        return new DenoisingLoop.Plan(latents, sigmas, velocity, null);
      }, onStep);
    }
  }
}
