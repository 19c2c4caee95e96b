package io.cachedit.pipeline;

import io.cachedit.models.common.Rope;
import io.cachedit.models.common.CfgParallel;
import io.cachedit.models.common.StepContext;
import io.cachedit.models.flux.FluxTransformer2DModel;
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
 * FLUX.1 text-to-image sampling from prompt embeddings (text encoders and VAE are not part of
 * cachedit yet: pass T5 {@code prompt_embeds} and CLIP {@code pooled_prompt_embeds}, get latents
 * back). Flow matching with the Euler scheduler and FLUX's resolution-dependent shift, 2x2 latent
 * packing, guidance embedding (dev) and optional true classifier-free guidance with a negative
 * prompt, as separate cond/uncond calls or one batched call. Same seed and request: identical
 * latents on CPU.
 */
public final class FluxPipeline extends CfgSpreadingPipeline {
  /** VAE downsampling of FLUX (8) times the 2x2 packing. */
  public static final int PIXELS_PER_TOKEN = 16;

  private final FluxTransformer2DModel transformer;
  private final FlowMatchEulerScheduler scheduler;
  private final int vaeScaleFactor;
  private final int packFactor;
  private final AtomicLong generations = new AtomicLong();

  /** FLUX.1: latents 8x below pixels (its VAE), packed 2x2 into tokens. */
  public FluxPipeline(FluxTransformer2DModel transformer, FlowMatchEulerScheduler scheduler) {
    this(transformer, scheduler, 8, 2);
  }

  /**
   * A FLUX-architecture model on another latent geometry, e.g. the bundled pixel-space model
   * ({@code vaeScaleFactor} 1, 4x4 packing).
   */
  public FluxPipeline(FluxTransformer2DModel transformer, FlowMatchEulerScheduler scheduler, int vaeScaleFactor,
      int packFactor) {
    if (vaeScaleFactor < 1 || packFactor < 1 || transformer.config().inChannels() % (packFactor * packFactor) != 0) {
      throw new IllegalArgumentException("vae scale " + vaeScaleFactor + " / pack factor " + packFactor
          + " do not fit in_channels " + transformer.config().inChannels());
    }
    this.transformer = transformer;
    this.scheduler = scheduler;
    this.vaeScaleFactor = vaeScaleFactor;
    this.packFactor = packFactor;
  }

  /** Pixels per token side: VAE downsampling times packing. */
  public int pixelsPerToken() {
    return vaeScaleFactor * packFactor;
  }

  /** Latent channels (before packing). */
  public int latentChannels() {
    return transformer.config().inChannels() / (packFactor * packFactor);
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
   * @param height image height in pixels (multiple of {@link #pixelsPerToken()}, 16 for FLUX.1)
   * @param width image width in pixels (same)
   * @param steps inference steps
   * @param guidanceScale the guidance embedding value (guidance-distilled models)
   * @param trueCfgScale classifier-free guidance scale (> 1 with negative embeddings enables CFG)
   * @param batchedCfg run cond and uncond as one batch instead of two calls
   * @param numImages images per prompt
   * @param seed seed of the initial noise
   * @param latents the initial noise itself, [batch, latent channels, height / vae scale, width / vae scale]
   *     (diffusers' {@code latents} argument, unpacked), or null to draw it from {@code seed}; a server
   *     batching requests concatenates each request's {@link #initialNoise} so each keeps its own seed
   */
  public record Request(Tensor promptEmbeds, Tensor pooledPromptEmbeds, Tensor negativePromptEmbeds,
      Tensor negativePooledPromptEmbeds, int height, int width, int steps, double guidanceScale, double trueCfgScale,
      boolean batchedCfg, int numImages, long seed, Tensor latents) {
    public Request {
      if (height <= 0 || width <= 0) {
        throw new IllegalArgumentException("height and width must be positive, got " + height + "x" + width);
      }
      if (steps < 1 || numImages < 1) {
        throw new IllegalArgumentException("steps and numImages must be >= 1");
      }
    }

    /** A request whose noise is drawn from {@code seed}. */
    public Request(Tensor promptEmbeds, Tensor pooledPromptEmbeds, Tensor negativePromptEmbeds,
        Tensor negativePooledPromptEmbeds, int height, int width, int steps, double guidanceScale, double trueCfgScale,
        boolean batchedCfg, int numImages, long seed) {
      this(promptEmbeds, pooledPromptEmbeds, negativePromptEmbeds, negativePooledPromptEmbeds, height, width, steps,
          guidanceScale, trueCfgScale, batchedCfg, numImages, seed, null);
    }
  }

  /**
   * The initial noise a request with {@code seed} and {@code batch} images of {@code height} x {@code width}
   * pixels starts from: [batch, latent channels, h, w] in fp32, bit-identical for the same arguments.
   */
  public Tensor initialNoise(long seed, int batch, int height, int width) {
    Generator generator = torch.createCPUGenerator(seed);
    return torch.randn(new long[] {batch, latentChannels(), height / vaeScaleFactor, width / vaeScaleFactor},
        new GeneratorOptional(generator), new TensorOptions(ScalarType.Float));
  }

  /** Runs the request; {@code onStep} (may be null) is called after each step with its index. */
  public Tensor generate(Request r, IntConsumer onStep) {
    if (r.height() % pixelsPerToken() != 0 || r.width() % pixelsPerToken() != 0) {
      throw new IllegalArgumentException("height and width must be multiples of " + pixelsPerToken() + ", got "
          + r.height() + "x" + r.width());
    }
    long generation = generations.incrementAndGet();
    int p = packFactor;
    int h = r.height() / vaeScaleFactor;
    int w = r.width() / vaeScaleFactor;
    int batch = r.numImages() * (int) r.promptEmbeds().size(0);
    boolean cfg = r.trueCfgScale() > 1 && r.negativePromptEmbeds() != null;
    try (GenerationGuard.Held held = guard.enter("FluxPipeline", transformers())) {
      return DenoisingLoop.run("FluxPipeline", scope -> {
        ScalarType dtype = transformer.dtype();
        Tensor noise = (r.latents() != null ? r.latents() : initialNoise(r.seed(), batch, r.height(), r.width()))
            .to(dtype);
        if (noise.dim() != 4 || noise.size(0) != batch || noise.size(1) != latentChannels() || noise.size(2) != h
            || noise.size(3) != w) {
          throw new IllegalArgumentException("latents must be [" + batch + ", " + latentChannels() + ", " + h + ", " + w
              + "], got " + java.util.Arrays.toString(noise.sizes().vec().get()));
        }
        // Same token layout every step: RoPE tables once per generation.
        Rope.CosSin computed = transformer.rotaryEmbedding(imageIds(h / p, w / p),
            torch.zeros(r.promptEmbeds().size(1), 3));
        Rope.CosSin rope = new Rope.CosSin(scope.keep(computed.cos()), scope.keep(computed.sin()));
        double[] sigmas = scheduler.sigmas(r.steps(), FlowMatchEulerScheduler.linspaceToOneOver(r.steps()),
            scheduler.mu((h / p) * (w / p)));
        // Text projections, timestep embeddings and output modulation of every step, in one batched pass.
        Tensor prompt = repeat(r.promptEmbeds(), r.numImages()).to(dtype);
        Tensor pooled = repeat(r.pooledPromptEmbeds(), r.numImages()).to(dtype);
        Tensor guidance = transformer.config().guidanceEmbeds()
            ? torch.full(new long[] {batch}, new Scalar(r.guidanceScale())).to(ScalarType.Float) : null;
        DenoisingLoop.Velocity velocity;
        if (!cfg) {
          FluxTransformer2DModel.Conditioning cond = transformer.condition(prompt, pooled,
              timesteps(sigmas, r.steps(), batch), guidance).keepIn(scope);
          velocity = (i, x) -> transformer.forward(x, cond, i, rope, step(generation, i, r, StepContext.Branch.SINGLE));
        } else {
          Tensor negPrompt = repeat(r.negativePromptEmbeds(), r.numImages()).to(dtype);
          Tensor negPooled = repeat(r.negativePooledPromptEmbeds(), r.numImages()).to(dtype);
          CfgParallel cfgp = cfgParallel;
          if (r.batchedCfg() && !cfgp.active()) {
            FluxTransformer2DModel.Conditioning both = transformer.condition(torch.cat(new TensorVector(prompt, negPrompt), 0),
                torch.cat(new TensorVector(pooled, negPooled), 0), timesteps(sigmas, r.steps(), 2 * batch),
                guidance == null ? null : torch.cat(new TensorVector(guidance, guidance), 0)).keepIn(scope);
            velocity = (i, x) -> {
              Tensor out = transformer.forward(torch.cat(new TensorVector(x, x), 0), both, i, rope,
                  step(generation, i, r, StepContext.Branch.SINGLE));
              return guide(out.narrow(0, 0, batch), out.narrow(0, batch, batch), r.trueCfgScale());
            };
          } else {
            Tensor ts = timesteps(sigmas, r.steps(), batch);
            // under CFG parallelism a rank conditions only the branch it computes
            boolean condHere = !cfgp.active() || cfgp.index() == 0;
            boolean uncondHere = !cfgp.active() || cfgp.index() == 1;
            FluxTransformer2DModel.Conditioning cond = condHere
                ? transformer.condition(prompt, pooled, ts, guidance).keepIn(scope) : null;
            FluxTransformer2DModel.Conditioning uncond = uncondHere
                ? transformer.condition(negPrompt, negPooled, ts, guidance).keepIn(scope) : null;
            // spread over two ranks, a batched request runs as two calls too: each rank computes its branch
            velocity = (i, x) -> {
              Tensor[] b = cfgp.branches(
                  () -> transformer.forward(x, cond, i, rope, step(generation, i, r, StepContext.Branch.COND)),
                  () -> transformer.forward(x, uncond, i, rope, step(generation, i, r, StepContext.Branch.UNCOND)));
              return guide(b[0], b[1], r.trueCfgScale());
            };
          }
        }
        return new DenoisingLoop.Plan(pack(noise, p), sigmas, velocity, x -> unpack(x, h, w, p));
      }, onStep);
    }
  }

  private static StepContext step(long generation, int i, Request r, StepContext.Branch branch) {
    return new StepContext(generation, i, r.steps(), branch);
  }

  /** The model's timestep input of every step: sigma_i for each of {@code batch} rows, [steps, batch]. */
  private static Tensor timesteps(double[] sigmas, int steps, int batch) {
    float[] t = new float[steps];
    for (int i = 0; i < steps; i++) {
      t[i] = (float) sigmas[i];
    }
    return torch.tensor(t).view(steps, 1).expand(steps, batch).contiguous();
  }

  /** {@code uncond + scale * (cond - uncond)}. */
  static Tensor guide(Tensor cond, Tensor uncond, double scale) {
    return uncond.add(cond.sub(uncond), new Scalar(scale));
  }

  private static Tensor repeat(Tensor t, int times) {
    return times == 1 ? t : t.repeat_interleave(times, new org.bytedeco.pytorch.LongOptional(0L),
        new org.bytedeco.pytorch.LongOptional());
  }

  /** diffusers' {@code _pack_latents}: [B, C, h, w] -> [B, (h/2)(w/2), 4C]. */
  public static Tensor pack(Tensor latents) {
    return pack(latents, 2);
  }

  /** {@code _pack_latents} with p x p patches: [B, C, h, w] -> [B, (h/p)(w/p), p*p*C], channel-major. */
  public static Tensor pack(Tensor latents, int p) {
    long b = latents.size(0);
    long c = latents.size(1);
    long h = latents.size(2);
    long w = latents.size(3);
    return latents.view(b, c, h / p, p, w / p, p).permute(0, 2, 4, 1, 3, 5).reshape(b, (h / p) * (w / p), c * p * p);
  }

  /** diffusers' {@code _unpack_latents}: [B, (h/2)(w/2), 4C] -> [B, C, h, w]. */
  public static Tensor unpack(Tensor packed, int h, int w) {
    return unpack(packed, h, w, 2);
  }

  /** Inverse of {@link #pack(Tensor, int)}. */
  public static Tensor unpack(Tensor packed, int h, int w, int p) {
    long b = packed.size(0);
    long c = packed.size(2) / ((long) p * p);
    return packed.view(b, h / p, w / p, c, p, p).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w);
  }

  /** diffusers' {@code _prepare_latent_image_ids}: [rows*cols, 3] with (0, row, col). */
  public static Tensor imageIds(int rows, int cols) {
    Tensor r = torch.arange(new Scalar(rows)).to(ScalarType.Float).view(rows, 1).expand(rows, cols);
    Tensor c = torch.arange(new Scalar(cols)).to(ScalarType.Float).view(1, cols).expand(rows, cols);
    return torch.stack(new TensorVector(torch.zeros(rows, cols), r, c), -1).reshape(rows * cols, 3);
  }
}
