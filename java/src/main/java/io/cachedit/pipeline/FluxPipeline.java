package io.cachedit.pipeline;

import io.cachedit.kernels.Tensors;
import io.cachedit.models.common.DiffusionPipeline;
import io.cachedit.models.common.StepContext;
import io.cachedit.models.flux.FluxTransformer2DModel;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.IntConsumer;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Generator;
import org.bytedeco.pytorch.GeneratorOptional;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptions;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * FLUX.1 text-to-image sampling from prompt embeddings (text encoders and VAE are not part of
 * cachedit yet: pass T5 {@code prompt_embeds} and CLIP {@code pooled_prompt_embeds}, get latents
 * back). Flow matching with the Euler scheduler and FLUX's resolution-dependent shift, 2x2 latent
 * packing, guidance embedding (dev) and optional true classifier-free guidance with a negative
 * prompt, as separate cond/uncond calls or one batched call. Same seed and request: identical
 * latents on CPU.
 */
public final class FluxPipeline implements DiffusionPipeline {
  /** VAE downsampling of FLUX (8) times the 2x2 packing. */
  public static final int PIXELS_PER_TOKEN = 16;

  private final FluxTransformer2DModel transformer;
  private final FlowMatchEulerScheduler scheduler;
  private final AtomicLong generations = new AtomicLong();

  public FluxPipeline(FluxTransformer2DModel transformer, FlowMatchEulerScheduler scheduler) {
    this.transformer = transformer;
    this.scheduler = scheduler;
  }

  public FluxTransformer2DModel transformer() {
    return transformer;
  }

  @Override
  public List<FluxTransformer2DModel> transformers() {
    return List.of(transformer);
  }

  /**
   * One generation request.
   *
   * @param promptEmbeds [1 or B, S_txt, joint_attention_dim]
   * @param pooledPromptEmbeds [1 or B, pooled_projection_dim]
   * @param negativePromptEmbeds for true CFG (null: none)
   * @param negativePooledPromptEmbeds for true CFG (null: none)
   * @param height image height in pixels (multiple of 16)
   * @param width image width in pixels (multiple of 16)
   * @param steps inference steps
   * @param guidanceScale the guidance embedding value (guidance-distilled models)
   * @param trueCfgScale classifier-free guidance scale (> 1 with negative embeddings enables CFG)
   * @param batchedCfg run cond and uncond as one batch instead of two calls
   * @param numImages images per prompt
   * @param seed seed of the initial noise
   */
  public record Request(Tensor promptEmbeds, Tensor pooledPromptEmbeds, Tensor negativePromptEmbeds,
      Tensor negativePooledPromptEmbeds, int height, int width, int steps, double guidanceScale, double trueCfgScale,
      boolean batchedCfg, int numImages, long seed) {
    public Request {
      if (height % PIXELS_PER_TOKEN != 0 || width % PIXELS_PER_TOKEN != 0 || height <= 0 || width <= 0) {
        throw new IllegalArgumentException("height and width must be positive multiples of 16, got " + height + "x"
            + width);
      }
      if (steps < 1 || numImages < 1) {
        throw new IllegalArgumentException("steps and numImages must be >= 1");
      }
    }
  }

  /** Runs the request; {@code onStep} (may be null) is called after each step with its index. */
  public Tensor generate(Request r, IntConsumer onStep) {
    long generation = generations.incrementAndGet();
    int latentChannels = transformer.config().inChannels() / 4;
    int h = 2 * (r.height() / PIXELS_PER_TOKEN);
    int w = 2 * (r.width() / PIXELS_PER_TOKEN);
    int batch = r.numImages() * (int) r.promptEmbeds().size(0);
    ScalarType dtype = transformer.dtype();
    boolean cfg = r.trueCfgScale() > 1 && r.negativePromptEmbeds() != null;
    Generator generator = torch.createCPUGenerator(r.seed());
    Tensor latents;
    Tensor imgIds;
    Tensor txtIds;
    Tensor prompt;
    Tensor pooled;
    Tensor negPrompt = null;
    Tensor negPooled = null;
    Tensor guidance;
    double[] sigmas;
    try (PointerScope scope = new PointerScope()) {
      Tensor noise = torch.randn(new long[] {batch, latentChannels, h, w}, new GeneratorOptional(generator),
          new TensorOptions(ScalarType.Float)).to(dtype);
      latents = Tensors.keep(pack(noise));
      imgIds = Tensors.keep(imageIds(h / 2, w / 2));
      txtIds = Tensors.keep(torch.zeros(r.promptEmbeds().size(1), 3));
      prompt = Tensors.keep(repeat(r.promptEmbeds(), r.numImages()).to(dtype));
      pooled = Tensors.keep(repeat(r.pooledPromptEmbeds(), r.numImages()).to(dtype));
      if (cfg) {
        negPrompt = Tensors.keep(repeat(r.negativePromptEmbeds(), r.numImages()).to(dtype));
        negPooled = Tensors.keep(repeat(r.negativePooledPromptEmbeds(), r.numImages()).to(dtype));
      }
      guidance = Tensors.keep(torch.full(new long[] {batch}, new Scalar(r.guidanceScale())).to(ScalarType.Float));
      sigmas = scheduler.sigmas(r.steps(), FlowMatchEulerScheduler.linspaceToOneOver(r.steps()),
          scheduler.mu((h / 2) * (w / 2)));
    }
    try {
      for (int i = 0; i < r.steps(); i++) {
        try (PointerScope scope = new PointerScope()) {
          Tensor t = torch.full(new long[] {batch}, new Scalar(sigmas[i])).to(dtype);
          Tensor g = transformer.config().guidanceEmbeds() ? guidance : null;
          Tensor v;
          if (!cfg) {
            v = transformer.forward(latents, prompt, pooled, t, imgIds, txtIds, g,
                new StepContext(generation, i, r.steps(), StepContext.Branch.SINGLE));
          } else if (r.batchedCfg()) {
            Tensor both = transformer.forward(torch.cat(new TensorVector(latents, latents), 0),
                torch.cat(new TensorVector(prompt, negPrompt), 0), torch.cat(new TensorVector(pooled, negPooled), 0),
                torch.cat(new TensorVector(t, t), 0), imgIds, txtIds, g == null ? null : torch.cat(new TensorVector(g, g), 0),
                new StepContext(generation, i, r.steps(), StepContext.Branch.SINGLE));
            v = guide(both.narrow(0, 0, batch), both.narrow(0, batch, batch), r.trueCfgScale());
          } else {
            Tensor cond = transformer.forward(latents, prompt, pooled, t, imgIds, txtIds, g,
                new StepContext(generation, i, r.steps(), StepContext.Branch.COND));
            Tensor uncond = transformer.forward(latents, negPrompt, negPooled, t, imgIds, txtIds, g,
                new StepContext(generation, i, r.steps(), StepContext.Branch.UNCOND));
            v = guide(cond, uncond, r.trueCfgScale());
          }
          Tensor next = Tensors.keep(FlowMatchEulerScheduler.step(v, latents, sigmas[i], sigmas[i + 1]));
          Tensors.release(latents);
          latents = next;
        }
        if (onStep != null) {
          onStep.accept(i);
        }
      }
      return unpack(latents, h, w);
    } finally {
      for (Tensor k : new Tensor[] {latents, imgIds, txtIds, prompt, pooled, negPrompt, negPooled, guidance}) {
        Tensors.release(k);
      }
    }
  }

  /** {@code uncond + scale * (cond - uncond)}. */
  static Tensor guide(Tensor cond, Tensor uncond, double scale) {
    return uncond.add(cond.sub(uncond).mul(new Scalar(scale)));
  }

  private static Tensor repeat(Tensor t, int times) {
    return times == 1 ? t : t.repeat_interleave(times, new org.bytedeco.pytorch.LongOptional(0L),
        new org.bytedeco.pytorch.LongOptional());
  }

  /** diffusers' {@code _pack_latents}: [B, C, h, w] -> [B, (h/2)(w/2), 4C]. */
  public static Tensor pack(Tensor latents) {
    long b = latents.size(0);
    long c = latents.size(1);
    long h = latents.size(2);
    long w = latents.size(3);
    return latents.view(b, c, h / 2, 2, w / 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, (h / 2) * (w / 2), c * 4);
  }

  /** diffusers' {@code _unpack_latents}: [B, (h/2)(w/2), 4C] -> [B, C, h, w]. */
  public static Tensor unpack(Tensor packed, int h, int w) {
    long b = packed.size(0);
    long c = packed.size(2) / 4;
    return packed.view(b, h / 2, w / 2, c, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w);
  }

  /** diffusers' {@code _prepare_latent_image_ids}: [rows*cols, 3] with (0, row, col). */
  public static Tensor imageIds(int rows, int cols) {
    Tensor r = torch.arange(new Scalar(rows)).to(ScalarType.Float).view(rows, 1).expand(rows, cols);
    Tensor c = torch.arange(new Scalar(cols)).to(ScalarType.Float).view(1, cols).expand(rows, cols);
    return torch.stack(new TensorVector(torch.zeros(rows, cols), r, c), -1).reshape(rows * cols, 3);
  }
}
