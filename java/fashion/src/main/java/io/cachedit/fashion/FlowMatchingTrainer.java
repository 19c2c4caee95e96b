package io.cachedit.fashion;

import io.cachedit.kernels.NativeRuntime;
import io.cachedit.kernels.NativeScope;
import io.cachedit.models.flux.FluxTransformer2DModel;
import io.cachedit.pipeline.FluxPipeline;
import io.cachedit.pipeline.ModelRegistry;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.AdamW;
import org.bytedeco.pytorch.AdamWOptions;
import org.bytedeco.pytorch.Generator;
import org.bytedeco.pytorch.GeneratorOptional;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptions;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * Trains the bundled class-conditional FLUX.1-architecture model on Fashion-MNIST with rectified
 * flow: {@code x_t = (1 - s) x_0 + s e}, the model predicts {@code e - x_0} at {@code s} drawn
 * logit-normal; AdamW with linear warm-up and cosine decay, gradient clipping at norm 1, an EMA of the
 * weights (what is saved). Class labels are the "text": each class (and a null class, used for
 * classifier-free guidance, substituted for 10% of the labels) owns learned prompt-embedding tokens
 * and a pooled vector, trained jointly and shipped as the model's text encoder ({@link ClassTextEncoder}).
 * Pixel space: 28x28 images in [-1, 1], packed 4x4 into 49 tokens of 16 channels.
 */
public final class FlowMatchingTrainer {
  /** Training hyper-parameters; the defaults produce the bundled model. */
  public record Options(int steps, int batch, double lr, double weightDecay, int warmupSteps, double emaDecay,
      double cfgDropout, long seed, int logEvery, int checkpointEvery) {
    public Options {
      if (steps < 1 || batch < 1 || lr <= 0 || warmupSteps < 0 || emaDecay < 0 || emaDecay >= 1 || cfgDropout < 0
          || cfgDropout >= 1 || logEvery < 1 || checkpointEvery < 1) {
        throw new IllegalArgumentException("invalid training options " + this);
      }
    }

    public static Options defaults() {
      return new Options(4000, 64, 6e-4, 0.01, 200, 0.999, 0.1, 0, 50, 500);
    }
  }

  /** Pixel-space geometry of the bundled model. */
  public static final int PACK = 4;
  public static final int TEXT_TOKENS = 4;

  /** The bundled model's transformer: FLUX.1 with 4 double-stream and 8 single-stream blocks, hidden 128. */
  public static final String TRANSFORMER_CONFIG = """
      {"_class_name": "FluxTransformer2DModel", "patch_size": 1, "in_channels": 16, "out_channels": 16,
       "num_layers": 4, "num_single_layers": 8, "attention_head_dim": 32, "num_attention_heads": 4,
       "joint_attention_dim": 64, "pooled_projection_dim": 64, "guidance_embeds": false,
       "axes_dims_rope": [8, 12, 12]}
      """;

  /** One logged point of the loss curve. */
  public record LossPoint(int step, double loss, double lr, double secondsElapsed) {}

  private final Options options;
  private final FashionMnist data;
  private final String transformerConfig;

  /** Trains the bundled architecture ({@link #TRANSFORMER_CONFIG}). */
  public FlowMatchingTrainer(Options options, FashionMnist data) {
    this(options, data, TRANSFORMER_CONFIG);
  }

  /** Trains another FLUX config (in_channels must be 16: one channel packed 4x4). */
  public FlowMatchingTrainer(Options options, FashionMnist data, String transformerConfig) {
    this.options = options;
    this.data = data;
    this.transformerConfig = transformerConfig;
  }

  /** Images [N, 28, 28] uint8 to [N, 1, 28, 28] in [-1, 1]. */
  public static Tensor normalise(Tensor images) {
    return images.to(ScalarType.Float).div(new Scalar(127.5)).sub(new Scalar(1.0)).unsqueeze(1);
  }

  /** Parameter keys that start at zero (adaLN-Zero, as DiT and FLUX train): modulations and the output. */
  static boolean zeroInit(String key) {
    return key.endsWith(".linear.weight") && (key.contains("norm1") || key.startsWith("single_transformer_blocks")
        || key.startsWith("norm_out")) || key.startsWith("proj_out.");
  }

  /**
   * Trains and returns the EMA model. {@code checkpoint} receives the EMA model and text encoder every
   * {@code checkpointEvery} steps and at the end; {@code log} every logged point.
   */
  public Result train(Consumer<Result> checkpoint, Consumer<LossPoint> log) {
    NativeRuntime.initialize();
    torch.manual_seed(options.seed());
    Generator gen = torch.createCPUGenerator(options.seed());
    GeneratorOptional g = new GeneratorOptional(gen);
    TensorOptions f32 = new TensorOptions(ScalarType.Float);
    FluxTransformer2DModel model = (FluxTransformer2DModel) ModelRegistry.defaults().randomTransformer(transformerConfig, options.seed(),
        ScalarType.Float);
    FluxTransformer2DModel ema = (FluxTransformer2DModel) ModelRegistry.defaults().randomTransformer(transformerConfig, options.seed(),
        ScalarType.Float);
    if (model.config().inChannels() != PACK * PACK || model.config().guidanceEmbeds()) {
      throw new IllegalArgumentException("the Fashion-MNIST trainer needs in_channels " + PACK * PACK
          + " (28x28 gray packed " + PACK + "x" + PACK + ") and guidance_embeds false");
    }
    int classes = FashionMnist.CLASSES.size();
    NativeScope owner = NativeScope.owner("flow-matching training");
    Tensor promptTable = owner.keep(torch.randn(new long[] {classes + 1, TEXT_TOKENS,
        model.config().jointAttentionDim()}, g, f32));
    Tensor pooledTable = owner.keep(torch.randn(new long[] {classes + 1, model.config().pooledProjectionDim()}, g,
        f32));
    Tensor emaPrompt = owner.keep(promptTable.clone());
    Tensor emaPooled = owner.keep(pooledTable.clone());
    List<Tensor> params = new ArrayList<>();
    List<Tensor> shadows = new ArrayList<>();
    Map<String, Tensor> emaParams = ema.parameters();
    try (NoGradGuard noGrad = new NoGradGuard()) {
      for (Map.Entry<String, Tensor> e : model.parameters().entrySet()) {
        if (zeroInit(e.getKey())) {
          e.getValue().zero_();
        }
        emaParams.get(e.getKey()).copy_(e.getValue());
        params.add(e.getValue());
        shadows.add(emaParams.get(e.getKey()));
      }
    }
    params.add(promptTable);
    shadows.add(emaPrompt);
    params.add(pooledTable);
    shadows.add(emaPooled);
    TensorVector paramVector = new TensorVector();
    for (Tensor p : params) {
      p.set_requires_grad(true);
      paramVector.push_back(p);
    }
    AdamWOptions adamOptions = new AdamWOptions(options.lr());
    adamOptions.weight_decay().put(options.weightDecay());
    AdamW optimizer = new AdamW(paramVector, adamOptions);

    Tensor images = owner.keep(normalise(data.images()));
    Tensor labels = owner.keep(data.labels());
    int side = FashionMnist.SIDE;
    Tensor imgIds = owner.keep(FluxPipeline.imageIds(side / PACK, side / PACK));
    Tensor txtIds = owner.keep(torch.zeros(TEXT_TOKENS, 3));
    long start = System.nanoTime();
    double lossSum = 0;
    int lossCount = 0;
    try {
      for (int step = 1; step <= options.steps(); step++) {
        double lr = learningRate(step);
        try (PointerScope scope = new PointerScope()) {
          optimizer.param_groups().get(0).options().set_lr(lr);
          Tensor idx = torch.randint(data.size(), new long[] {options.batch()}, g,
              new TensorOptions(ScalarType.Long));
          Tensor x0 = FluxPipeline.pack(images.index_select(0, idx), PACK);
          Tensor y = labels.index_select(0, idx);
          Tensor drop = torch.rand(new long[] {options.batch()}, g, f32).lt(new Scalar(options.cfgDropout()));
          y = torch.where(drop, torch.full(new long[] {options.batch()}, new Scalar((long) classes),
              new TensorOptions(ScalarType.Long)), y);
          Tensor s = torch.sigmoid(torch.randn(new long[] {options.batch()}, g, f32));
          Tensor noise = torch.randn(x0.sizes().vec().get(), g, f32);
          Tensor sv = s.view(-1, 1, 1);
          Tensor xt = x0.mul(sv.neg().add(new Scalar(1.0))).add(noise.mul(sv));
          Tensor v = model.forward(xt, promptTable.index_select(0, y), pooledTable.index_select(0, y), s, imgIds,
              txtIds, null, null);
          Tensor loss = torch.mse_loss(v, noise.sub(x0));
          optimizer.zero_grad();
          loss.backward();
          torch.clip_grad_norm_(paramVector, 1.0);
          optimizer.step();
          double decay = Math.min(options.emaDecay(), (1.0 + step) / (10.0 + step));
          try (NoGradGuard noGrad = new NoGradGuard()) {
            for (int i = 0; i < params.size(); i++) {
              shadows.get(i).mul_(new Scalar(decay)).add_(params.get(i).detach(), new Scalar(1.0 - decay));
            }
          }
          lossSum += loss.item_double();
          lossCount++;
        }
        if (step % options.logEvery() == 0 || step == options.steps()) {
          log.accept(new LossPoint(step, lossSum / lossCount, lr, (System.nanoTime() - start) / 1e9));
          lossSum = 0;
          lossCount = 0;
        }
        if (step % options.checkpointEvery() == 0 || step == options.steps()) {
          try (ClassTextEncoder te = new ClassTextEncoder(emaPrompt, emaPooled)) {
            checkpoint.accept(new Result(ema, te, step));
          }
        }
      }
      return new Result(ema, new ClassTextEncoder(emaPrompt.clone(), emaPooled.clone()), options.steps());
    } finally {
      owner.close();
      model.close();
    }
  }

  /** Linear warm-up to {@code lr}, then cosine decay to 10% of it. */
  double learningRate(int step) {
    if (step <= options.warmupSteps()) {
      return options.lr() * step / Math.max(1, options.warmupSteps());
    }
    double progress = (double) (step - options.warmupSteps()) / Math.max(1, options.steps() - options.warmupSteps());
    return options.lr() * (0.1 + 0.9 * 0.5 * (1 + Math.cos(Math.PI * progress)));
  }

  /** The trained EMA transformer (owned by the caller) and its class text encoder. */
  public record Result(FluxTransformer2DModel transformer, ClassTextEncoder textEncoder, int step) {}

  /** Keys of the saved text encoder. */
  static Map<String, Tensor> encoderTensors(ClassTextEncoder e) {
    Map<String, Tensor> m = new LinkedHashMap<>();
    m.put("prompt_embeds", e.promptEmbeds());
    m.put("pooled_prompt_embeds", e.pooledPromptEmbeds());
    return m;
  }
}
