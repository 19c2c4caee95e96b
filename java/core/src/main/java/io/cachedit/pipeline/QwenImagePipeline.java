package io.cachedit.pipeline;

import io.cachedit.models.common.StepContext;
import io.cachedit.models.qwenimage.QwenImageTransformer2DModel;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.IntConsumer;
import org.bytedeco.pytorch.Generator;
import org.bytedeco.pytorch.GeneratorOptional;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptions;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * Qwen-Image sampling from prompt embeddings (diffusers' {@code QwenImagePipeline} without the text
 * encoder and VAE): latents packed 2x2 as FLUX's, sigmas {@code linspace(1, 1/N, N)} shifted by the
 * scheduler (Qwen-Image's config: dynamic exponential shift, terminal 0.02), the model fed
 * {@code (t in the latents' dtype) / 1000}, true classifier-free guidance as separate cond / uncond
 * calls with diffusers' norm rescale {@code comb * |cond| / |comb|} per token. Returns packed latents.
 */
public final class QwenImagePipeline extends CfgSpreadingPipeline {
  public static final int VAE_SCALE_FACTOR = 8;

  private final QwenImageTransformer2DModel transformer;
  private final FlowMatchEulerScheduler scheduler;
  private final AtomicLong generations = new AtomicLong();

  private final int vaeScaleFactor;

  public QwenImagePipeline(QwenImageTransformer2DModel transformer, FlowMatchEulerScheduler scheduler) {
    this(transformer, scheduler, VAE_SCALE_FACTOR);
  }

  /** With another VAE's downsampling ({@code 2^len(temperal_downsample)}). */
  public QwenImagePipeline(QwenImageTransformer2DModel transformer, FlowMatchEulerScheduler scheduler,
      int vaeScaleFactor) {
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

  public QwenImageTransformer2DModel transformer() {
    return transformer;
  }

  @Override
  public List<QwenImageTransformer2DModel> transformers() {
    return List.of(transformer);
  }

  /**
   * @param promptEmbeds [B, S, joint_attention_dim]
   * @param promptEmbedsMask [B, S] (1 = token) or null
   * @param negativePromptEmbeds [B, S', D] or null (then no CFG)
   * @param negativePromptEmbedsMask [B, S'] or null
   * @param height pixels (multiple of 2 x the VAE scale: 16 for Qwen-Image)
   * @param width pixels (same)
   * @param steps inference steps
   * @param trueCfgScale CFG scale (> 1 with a negative prompt enables CFG; Qwen-Image default 4)
   * @param seed noise seed
   */
  public record Request(Tensor promptEmbeds, Tensor promptEmbedsMask, Tensor negativePromptEmbeds,
      Tensor negativePromptEmbedsMask, int height, int width, int steps, double trueCfgScale, long seed) {
    public Request {
      if (height <= 0 || width <= 0 || steps < 1) {
        throw new IllegalArgumentException("height and width must be positive, steps >= 1");
      }
    }
  }

  /** Runs the request and returns the packed latents [B, (h/2)(w/2), 4C]; unpack with {@link FluxPipeline#unpack}. */
  public Tensor generate(Request r, IntConsumer onStep) {
    long generation = generations.incrementAndGet();
    int batch = (int) r.promptEmbeds().size(0);
    boolean cfg = r.trueCfgScale() > 1 && r.negativePromptEmbeds() != null;
    if (r.height() % (vaeScaleFactor * 2) != 0 || r.width() % (vaeScaleFactor * 2) != 0) {
      throw new IllegalArgumentException("height and width must be multiples of " + vaeScaleFactor * 2 + ", got "
          + r.height() + "x" + r.width());
    }
    int h = 2 * (r.height() / (vaeScaleFactor * 2));
    int w = 2 * (r.width() / (vaeScaleFactor * 2));
    int channels = transformer.config().inChannels() / 4;
    List<long[]> imgShapes = List.of(new long[] {1, h / 2, w / 2});
    try (GenerationGuard.Held held = guard.enter("QwenImagePipeline", transformers())) {
      return DenoisingLoop.run("QwenImagePipeline", scope -> {
        ScalarType dtype = transformer.dtype();
        Generator generator = torch.createCPUGenerator(r.seed());
        Tensor noise = torch.randn(new long[] {batch, channels, h, w}, new GeneratorOptional(generator),
            new TensorOptions(ScalarType.Float)).to(dtype);
        Tensor latents = FluxPipeline.pack(noise);
        double[] sigmas = scheduler.sigmas(r.steps(), FlowMatchEulerScheduler.linspaceToOneOver(r.steps()),
            scheduler.mu((int) latents.size(1)));
        double[] timesteps = scheduler.timesteps(sigmas);
        DenoisingLoop.Velocity velocity = (i, x) -> {
          Tensor t = torch.full(new long[] {batch}, new Scalar(timesteps[i])).to(dtype).div(new Scalar(1000.0));
          if (!cfg) {
            return transformer.forward(x, r.promptEmbeds(), r.promptEmbedsMask(), t, imgShapes,
                new StepContext(generation, i, r.steps(), StepContext.Branch.SINGLE));
          }
          Tensor[] b = cfgParallel.branches(
              () -> transformer.forward(x, r.promptEmbeds(), r.promptEmbedsMask(), t, imgShapes,
                  new StepContext(generation, i, r.steps(), StepContext.Branch.COND)),
              () -> transformer.forward(x, r.negativePromptEmbeds(), r.negativePromptEmbedsMask(), t,
                  imgShapes, new StepContext(generation, i, r.steps(), StepContext.Branch.UNCOND)));
          Tensor cond = b[0];
          Tensor uncond = b[1];
          Tensor comb = uncond.add(cond.sub(uncond).mul(new Scalar(r.trueCfgScale())));
          Tensor condNorm = torch.linalg_vector_norm(cond, new Scalar(2.0), new long[] {-1}, true,
              new org.bytedeco.pytorch.ScalarTypeOptional());
          Tensor combNorm = torch.linalg_vector_norm(comb, new Scalar(2.0), new long[] {-1}, true,
              new org.bytedeco.pytorch.ScalarTypeOptional());
          return comb.mul(condNorm.div(combNorm));
        };
        return new DenoisingLoop.Plan(latents, sigmas, velocity, null);
      }, onStep);
    }
  }
}
