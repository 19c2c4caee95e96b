package io.cachedit.pipeline;

import io.cachedit.models.common.StepContext;
import io.cachedit.models.wan.WanTransformer3DModel;
import java.util.ArrayList;
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
 * Wan 2.1 / 2.2 text-to-video sampling from prompt embeddings (UMT5 {@code prompt_embeds}; no VAE:
 * returns latents [B, 16, F, H/8, W/8]). Flow matching with a static shift (Wan's {@code flow_shift}),
 * classifier-free guidance as separate cond/uncond calls. Wan 2.2 MoE: two transformers, the second
 * taking the steps whose timestep is below {@code boundaryRatio * 1000}, each with its own guidance
 * scale; each transformer sees its own step indices (0..its steps-1).
 */
public final class WanPipeline extends CfgSpreadingPipeline {
  private final WanTransformer3DModel transformer;
  private final WanTransformer3DModel transformer2;
  private final FlowMatchEulerScheduler scheduler;
  private final UniPcScheduler unipc;
  private final double boundaryRatio;
  private final AtomicLong generations = new AtomicLong();

  /** Wan 2.1 (one transformer). */
  public WanPipeline(WanTransformer3DModel transformer, FlowMatchEulerScheduler scheduler) {
    this(transformer, null, scheduler, 0);
  }

  /** Wan 2.2 MoE: {@code transformer} for high noise, {@code transformer2} below the boundary. */
  public WanPipeline(WanTransformer3DModel transformer, WanTransformer3DModel transformer2,
      FlowMatchEulerScheduler scheduler, double boundaryRatio) {
    this(transformer, transformer2, scheduler, null, boundaryRatio);
  }

  /** With the UniPC multistep sampler Wan's folders configure (one transformer, or two with the boundary). */
  public WanPipeline(WanTransformer3DModel transformer, WanTransformer3DModel transformer2, UniPcScheduler unipc,
      double boundaryRatio) {
    this(transformer, transformer2, null, unipc, boundaryRatio);
  }

  private WanPipeline(WanTransformer3DModel transformer, WanTransformer3DModel transformer2,
      FlowMatchEulerScheduler scheduler, UniPcScheduler unipc, double boundaryRatio) {
    this.transformer = transformer;
    this.transformer2 = transformer2;
    this.scheduler = scheduler;
    this.unipc = unipc;
    this.boundaryRatio = boundaryRatio;
    if (transformer2 != null && (boundaryRatio <= 0 || boundaryRatio >= 1)) {
      throw new IllegalArgumentException("boundary_ratio must be in (0, 1) with two transformers, got " + boundaryRatio);
    }
  }

  @Override
  public List<WanTransformer3DModel> transformers() {
    List<WanTransformer3DModel> l = new ArrayList<>();
    l.add(transformer);
    if (transformer2 != null) {
      l.add(transformer2);
    }
    return l;
  }

  /**
   * @param promptEmbeds [1, S, text_dim]
   * @param negativePromptEmbeds [1, S, text_dim] or null (then no CFG)
   * @param frames video frames (1 + 4k)
   * @param height pixels (multiple of 16)
   * @param width pixels (multiple of 16)
   * @param steps inference steps
   * @param guidanceScale CFG scale (high-noise transformer)
   * @param guidanceScale2 CFG scale of the low-noise transformer (Wan 2.2)
   * @param seed noise seed
   */
  public record Request(Tensor promptEmbeds, Tensor negativePromptEmbeds, int frames, int height, int width,
      int steps, double guidanceScale, double guidanceScale2, long seed) {
    public Request {
      if ((frames - 1) % 4 != 0 || height % 16 != 0 || width % 16 != 0 || steps < 1) {
        throw new IllegalArgumentException("frames must be 1 + 4k and height/width multiples of 16, steps >= 1");
      }
    }
  }

  /** The number of steps each transformer runs: {high-noise, low-noise}. */
  public int[] stepsPerTransformer(int steps) {
    double[] t = timesteps(sigmas(steps));
    int trainSteps = unipc != null ? unipc.numTrainTimesteps() : scheduler.numTrainTimesteps();
    int high = 0;
    for (double v : t) {
      if (transformer2 == null || v >= boundaryRatio * trainSteps) {
        high++;
      }
    }
    return new int[] {high, steps - high};
  }

  private double[] sigmas(int steps) {
    return unipc != null ? unipc.sigmas(steps, Double.NaN) : scheduler.sigmas(steps, null, Double.NaN);
  }

  private double[] timesteps(double[] sigmas) {
    return unipc != null ? unipc.timesteps(sigmas) : scheduler.timesteps(sigmas);
  }

  /** Runs the request and returns the final latents [1, C, F', H/8, W/8] in fp32. */
  public Tensor generate(Request r, IntConsumer onStep) {
    long generation = generations.incrementAndGet();
    int channels = transformer.config().inChannels();
    long f = (r.frames() - 1) / 4 + 1;
    long h = r.height() / 8;
    long w = r.width() / 8;
    ScalarType dtype = transformer.dtype();
    double[] sigmas = sigmas(r.steps());
    double[] timesteps = timesteps(sigmas);
    int[] split = stepsPerTransformer(r.steps());
    boolean cfg = r.negativePromptEmbeds() != null;
    try (GenerationGuard.Held held = guard.enter("WanPipeline", transformers())) {
      return DenoisingLoop.run("WanPipeline", scope -> {
        Generator generator = torch.createCPUGenerator(r.seed());
        Tensor latents = torch.randn(new long[] {1, channels, f, h, w}, new GeneratorOptional(generator),
            new TensorOptions(ScalarType.Float));
        DenoisingLoop.Velocity velocity = (i, latentsNow) -> {
          boolean low = transformer2 != null && i >= split[0];
          WanTransformer3DModel model = low ? transformer2 : transformer;
          int local = low ? i - split[0] : i;
          int localTotal = low ? split[1] : split[0];
          double scale = low ? r.guidanceScale2() : r.guidanceScale();
          Tensor x = latentsNow.to(dtype);
          Tensor t = torch.full(new long[] {1}, new Scalar(timesteps[i]));
          Tensor v;
          if (cfg) {
            Tensor[] b = cfgParallel.branches(
                () -> model.forward(x, t, r.promptEmbeds(), null,
                    new StepContext(generation, local, localTotal, StepContext.Branch.COND)),
                () -> model.forward(x, t, r.negativePromptEmbeds(), null,
                    new StepContext(generation, local, localTotal, StepContext.Branch.UNCOND)));
            v = FluxPipeline.guide(b[0], b[1], scale);
          } else {
            v = model.forward(x, t, r.promptEmbeds(), null,
                new StepContext(generation, local, localTotal, StepContext.Branch.SINGLE));
          }
          return v.to(ScalarType.Float);
        };
        return new DenoisingLoop.Plan(latents, sigmas, velocity, null,
            unipc == null ? null : unipc.stepper(sigmas, scope));
      }, onStep);
    }
  }
}
