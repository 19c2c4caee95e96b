package io.cachedit.models.zimage;

import io.cachedit.io.JsonConfig;
import io.cachedit.io.WeightScope;
import io.cachedit.models.common.Activations;
import io.cachedit.models.common.Attention;
import io.cachedit.models.common.AttentionBackend;
import io.cachedit.models.common.BlockIO;
import io.cachedit.models.common.BlockList;
import io.cachedit.models.common.ContextParallelPlan;
import io.cachedit.models.common.SequenceParallel;
import io.cachedit.models.common.AbstractDiffusersTransformer;
import io.cachedit.models.common.ForwardInputs;
import io.cachedit.models.common.ForwardPattern;
import io.cachedit.models.common.Linear;
import io.cachedit.models.common.Norms;
import io.cachedit.models.common.Rope;
import io.cachedit.models.common.StepContext;
import io.cachedit.models.common.TensorParallel;
import io.cachedit.models.common.TensorParallelPlan;
import io.cachedit.models.common.Timesteps;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptions;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * Z-Image (S3-DiT): a single-stream transformer over [image tokens; caption tokens], each sequence
 * padded to a multiple of 32 with learned pad tokens, 3-axis RoPE (frame/caption index, row, column)
 * with fp32-rounded angles, sandwich RMSNorms with tanh-gated, scale-only modulation from a 256-wide
 * timestep embedding; two un-modulated caption refiner blocks and two modulated noise refiner blocks
 * before the main stack; diffusers' {@code transformer_z_image.py}. Block list {@code layers},
 * pattern 3 (the refiners run uncached, as in cache-dit's adapter).
 */
public final class ZImageTransformer2DModel extends AbstractDiffusersTransformer {
  /** Sequences are padded to a multiple of this (diffusers' {@code SEQ_MULTI_OF}). */
  static final int SEQ_MULTIPLE = 32;
  /** Width of the modulation input (diffusers' {@code ADALN_EMBED_DIM}). */
  static final int ADALN_EMBED_DIM = 256;

  /** config.json of {@code ZImageTransformer2DModel}. */
  public record Config(int[] allPatchSize, int[] allFPatchSize, int inChannels, int dim, int nLayers,
      int nRefinerLayers, int nHeads, int nKvHeads, double normEps, boolean qkNorm, int capFeatDim, double ropeTheta,
      double tScale, int[] axesDims, int[] axesLens) {
    public int headDim() {
      return dim / nHeads;
    }

    int adalnDim() {
      return Math.min(dim, ADALN_EMBED_DIM);
    }

    public static Config fromJson(JsonConfig c) {
      Config cfg = new Config(c.getIntArray("all_patch_size", new int[] {2}),
          c.getIntArray("all_f_patch_size", new int[] {1}), c.getInt("in_channels", 16), c.getInt("dim", 3840),
          c.getInt("n_layers", 30), c.getInt("n_refiner_layers", 2), c.getInt("n_heads", 30),
          c.getInt("n_kv_heads", 30), c.getDouble("norm_eps", 1e-5), c.getBool("qk_norm", true),
          c.getInt("cap_feat_dim", 2560), c.getDouble("rope_theta", 256.0), c.getDouble("t_scale", 1000.0),
          c.getIntArray("axes_dims", new int[] {32, 48, 48}), c.getIntArray("axes_lens", new int[] {1024, 512, 512}));
      if (cfg.allPatchSize().length != cfg.allFPatchSize().length || cfg.allPatchSize().length == 0) {
        throw new IllegalArgumentException("all_patch_size and all_f_patch_size must be non-empty and of equal length");
      }
      if (cfg.dim() % cfg.nHeads() != 0 || Arrays.stream(cfg.axesDims()).sum() != cfg.headDim()) {
        throw new IllegalArgumentException("dim / n_heads (" + cfg.dim() + " / " + cfg.nHeads()
            + ") must be an integer equal to the sum of axes_dims " + Arrays.toString(cfg.axesDims()));
      }
      if (Arrays.stream(cfg.axesDims()).anyMatch(d -> d % 2 != 0)) {
        throw new IllegalArgumentException("axes_dims " + Arrays.toString(cfg.axesDims()) + " must be even sizes");
      }
      if (cfg.axesDims().length != cfg.axesLens().length) {
        throw new IllegalArgumentException("axes_dims and axes_lens must have the same length");
      }
      if (cfg.nKvHeads() != cfg.nHeads()) {
        throw new IllegalArgumentException("n_kv_heads (" + cfg.nKvHeads() + ") != n_heads (" + cfg.nHeads()
            + "): diffusers' Z-Image attention has as many key/value heads as query heads");
      }
      c.warnUnused("ZImageTransformer2DModel");
      return cfg;
    }

    public String toJson() {
      return "{\n  \"_class_name\": \"ZImageTransformer2DModel\",\n  \"all_patch_size\": " + Arrays.toString(allPatchSize)
          + ",\n  \"all_f_patch_size\": " + Arrays.toString(allFPatchSize) + ",\n  \"in_channels\": " + inChannels
          + ",\n  \"dim\": " + dim + ",\n  \"n_layers\": " + nLayers + ",\n  \"n_refiner_layers\": " + nRefinerLayers
          + ",\n  \"n_heads\": " + nHeads + ",\n  \"n_kv_heads\": " + nKvHeads + ",\n  \"norm_eps\": " + normEps
          + ",\n  \"qk_norm\": " + qkNorm + ",\n  \"cap_feat_dim\": " + capFeatDim + ",\n  \"rope_theta\": "
          + ropeTheta + ",\n  \"t_scale\": " + tScale + ",\n  \"axes_dims\": " + Arrays.toString(axesDims)
          + ",\n  \"axes_lens\": " + Arrays.toString(axesLens) + "\n}\n";
    }
  }

  /** Per-call block arguments: keep-mask [B,1,1,S], RoPE tables [B,S,D], modulation input or null. */
  record Args(Tensor mask, Rope.CosSin rope, Tensor adaln, AttentionBackend backend) {}

  /** One patch-size variant: {@code all_x_embedder.{p}-{f}} and {@code all_final_layer.{p}-{f}}. */
  record PatchHead(int patch, int fPatch, Linear embedder, Linear finalModulation, Linear finalLinear) {}

  private final Config config;
  private final List<PatchHead> heads = new ArrayList<>();
  private final Linear tEmbedder1;
  private final Linear tEmbedder2;
  private final Tensor capNormWeight;
  private final Linear capLinear;
  private final Tensor xPadToken;
  private final Tensor capPadToken;
  private final List<ZImageTransformerBlock> noiseRefiner = new ArrayList<>();
  private final List<ZImageTransformerBlock> contextRefiner = new ArrayList<>();
  private final BlockList<Args> layers;

  public ZImageTransformer2DModel(Config config, WeightScope w) {
    super("ZImageTransformer2DModel", w);
    this.config = config;
    long dim = config.dim();
    for (int i = 0; i < config.allPatchSize().length; i++) {
      int p = config.allPatchSize()[i];
      int f = config.allFPatchSize()[i];
      String key = p + "-" + f;
      long patchDim = (long) f * p * p * config.inChannels();
      WeightScope fin = w.pp("all_final_layer").pp(key);
      heads.add(new PatchHead(p, f, new Linear(w.pp("all_x_embedder").pp(key), patchDim, dim),
          new Linear(fin.pp("adaLN_modulation").pp(1), config.adalnDim(), dim),
          new Linear(fin.pp("linear"), dim, patchDim)));
    }
    WeightScope te = w.pp("t_embedder").pp("mlp");
    this.tEmbedder1 = new Linear(te.pp(0), 256, 1024);
    this.tEmbedder2 = new Linear(te.pp(2), 1024, config.adalnDim());
    this.capNormWeight = w.pp("cap_embedder").pp(0).get("weight", config.capFeatDim());
    this.capLinear = new Linear(w.pp("cap_embedder").pp(1), config.capFeatDim(), dim);
    this.xPadToken = w.get("x_pad_token", 1, dim);
    this.capPadToken = w.get("cap_pad_token", 1, dim);
    for (int i = 0; i < config.nRefinerLayers(); i++) {
      noiseRefiner.add(new ZImageTransformerBlock(w.pp("noise_refiner").pp(i), config, true));
      contextRefiner.add(new ZImageTransformerBlock(w.pp("context_refiner").pp(i), config, false));
    }
    List<io.cachedit.models.common.Block<Args>> list = new ArrayList<>();
    for (int i = 0; i < config.nLayers(); i++) {
      ZImageTransformerBlock b = new ZImageTransformerBlock(w.pp("layers").pp(i), config, true);
      list.add((h, e, a) -> new BlockIO(b.forward(h, a), null));
    }
    this.layers = new BlockList<>("layers", ForwardPattern.PATTERN_3, list);
    finishLoading(w);
  }

  public Config config() {
    return config;
  }

  @Override
  public List<BlockList<?>> blockLists() {
    return List.of(layers);
  }

  private PatchHead head(int patch, int fPatch) {
    for (PatchHead h : heads) {
      if (h.patch() == patch && h.fPatch() == fPatch) {
        return h;
      }
    }
    throw new IllegalArgumentException("patch_size " + patch + " / f_patch_size " + fPatch + " is not in this model's"
        + " all_patch_size " + Arrays.toString(config.allPatchSize()) + " / all_f_patch_size "
        + Arrays.toString(config.allFPatchSize()));
  }

  private static long padding(long length) {
    return Math.floorMod(-length, SEQ_MULTIPLE);
  }

  /** Integer grid [prod(size), 3] of (a, b, c) starting at {@code start} (diffusers' create_coordinate_grid). */
  private static Tensor grid(long f, long h, long w, long start) {
    TensorOptions opts = new TensorOptions(ScalarType.Long);
    Tensor a = torch.arange(new Scalar(start), new Scalar(start + f), opts).view(f, 1, 1).expand(f, h, w);
    Tensor b = torch.arange(new Scalar(0), new Scalar(h), opts).view(1, h, 1).expand(f, h, w);
    Tensor c = torch.arange(new Scalar(0), new Scalar(w), opts).view(1, 1, w).expand(f, h, w);
    return torch.stack(new TensorVector(a, b, c), -1).reshape(-1, 3);
  }

  private void checkPositions(Tensor ids) {
    for (int a = 0; a < config.axesLens().length; a++) {
      long max = ids.select(1, a).max().item_long();
      if (max >= config.axesLens()[a]) {
        throw new IllegalArgumentException("position " + max + " on RoPE axis " + a + " exceeds axes_lens["
            + a + "] = " + config.axesLens()[a] + " (caption or latent too long for this model)");
      }
    }
  }

  /** Right-pads [S_i, ...] items with zeros to [B, max S, ...] (torch's pad_sequence). */
  private static Tensor padSequence(List<Tensor> items) {
    long max = 0;
    for (Tensor t : items) {
      max = Math.max(max, t.size(0));
    }
    TensorVector padded = new TensorVector();
    for (Tensor t : items) {
      long[] shape = t.sizes().vec().get();
      shape[0] = max - t.size(0);
      padded.push_back(shape[0] == 0 ? t : torch.cat(new TensorVector(t,
          torch.zeros(shape, new TensorOptions(t.scalar_type()))), 0));
    }
    return torch.stack(padded, 0);
  }

  private static Tensor keepMask(List<Long> lengths, long max) {
    TensorVector rows = new TensorVector();
    Tensor positions = torch.arange(new Scalar(max));
    for (long length : lengths) {
      rows.push_back(positions.lt(new Scalar(length)));
    }
    return torch.stack(rows, 0).unsqueeze(1).unsqueeze(1);
  }

  private Rope.CosSin rope(List<Tensor> ids) {
    List<Tensor> cos = new ArrayList<>();
    List<Tensor> sin = new ArrayList<>();
    for (Tensor id : ids) {
      checkPositions(id);
      Rope.CosSin cs = Rope.multiAxisFp32Angles(id, config.axesDims(), config.ropeTheta());
      cos.add(cs.cos());
      sin.add(cs.sin());
    }
    return new Rope.CosSin(padSequence(cos), padSequence(sin));
  }

  /**
   * The Z-Image forward over a batch of images and captions of any lengths.
   *
   * @param images latents, each [C, F, H, W]
   * @param t [B] in 0..1 (scaled by {@code t_scale} inside)
   * @param captions caption features, each [L_i, cap_feat_dim]
   * @return the prediction per image, each [C, F, H, W]
   */
  public List<Tensor> forward(List<Tensor> images, Tensor t, List<Tensor> captions, int patch, int fPatch,
      StepContext step) {
    ensureOpen();
    int batch = images.size();
    if (captions.size() != batch) {
      throw new IllegalArgumentException("got " + batch + " images but " + captions.size() + " captions");
    }
    PatchHead head = head(patch, fPatch);
    long c = config.inChannels();
    Tensor tt = t.dim() == 0 ? t.expand(batch) : t;
    Tensor tFreq = Timesteps.embedding(tt.to(ScalarType.Float).mul(new Scalar(config.tScale())), 256, true, 0);
    Tensor adaln = tEmbedder2.forward(Activations.silu(tEmbedder1.forward(tFreq.to(dtype))));

    List<Tensor> xs = new ArrayList<>();
    List<Tensor> caps = new ArrayList<>();
    List<Tensor> xIds = new ArrayList<>();
    List<Tensor> capIds = new ArrayList<>();
    List<Long> xLens = new ArrayList<>();
    List<Long> capLens = new ArrayList<>();
    List<long[]> sizes = new ArrayList<>();
    for (int i = 0; i < batch; i++) {
      Tensor cap = captions.get(i);
      if (cap.dim() != 2 || cap.size(1) != config.capFeatDim() || cap.size(0) == 0) {
        throw new IllegalArgumentException("cap_feats[" + i + "] must be [L > 0, " + config.capFeatDim() + "], got "
            + Arrays.toString(cap.sizes().vec().get()));
      }
      long capLen = cap.size(0);
      long capPad = padding(capLen);
      Tensor capEmb = capLinear.forward(Norms.rmsNorm(cap.to(dtype), capNormWeight, config.normEps()));
      if (capPad > 0) {
        capEmb = torch.cat(new TensorVector(capEmb, capPadToken.expand(capPad, config.dim())), 0);
      }
      caps.add(capEmb);
      capIds.add(grid(capLen + capPad, 1, 1, 1));
      capLens.add(capLen + capPad);

      Tensor image = images.get(i);
      long[] s = image.sizes().vec().get();
      if (s.length != 4 || s[0] != c || s[1] % fPatch != 0 || s[2] % patch != 0 || s[3] % patch != 0) {
        throw new IllegalArgumentException("x[" + i + "] must be [" + c + ", F, H, W] with F divisible by "
            + fPatch + " and H, W by " + patch + ", got " + Arrays.toString(s));
      }
      sizes.add(s);
      long ft = s[1] / fPatch;
      long ht = s[2] / patch;
      long wt = s[3] / patch;
      Tensor tokens = image.to(dtype).view(c, ft, fPatch, ht, patch, wt, patch).permute(1, 3, 5, 2, 4, 6, 0)
          .reshape(ft * ht * wt, (long) fPatch * patch * patch * c);
      long n = tokens.size(0);
      long xPad = padding(n);
      Tensor xEmb = head.embedder().forward(tokens);
      Tensor ids = grid(ft, ht, wt, capLen + capPad + 1);
      if (xPad > 0) {
        xEmb = torch.cat(new TensorVector(xEmb, xPadToken.expand(xPad, config.dim())), 0);
        ids = torch.cat(new TensorVector(ids, torch.zeros(new long[] {xPad, 3}, new TensorOptions(ScalarType.Long))), 0);
      }
      xs.add(xEmb);
      xIds.add(ids);
      xLens.add(n + xPad);
    }

    // Noise refiner over the image tokens, caption refiner over the caption tokens.
    Rope.CosSin xRope = rope(xIds);
    Tensor x = padSequence(xs);
    x = refine(noiseRefiner, "noise_refiner", x, new Args(keepMask(xLens, x.size(1)), xRope, adaln, attention()));
    Rope.CosSin capRope = rope(capIds);
    Tensor cap = padSequence(caps);
    cap = refine(contextRefiner, "context_refiner", cap, new Args(keepMask(capLens, cap.size(1)), capRope, null,
        attention()));

    // Unified [image; caption] stream through the cached main stack.
    List<Tensor> unified = new ArrayList<>();
    List<Tensor> uCos = new ArrayList<>();
    List<Tensor> uSin = new ArrayList<>();
    List<Long> uLens = new ArrayList<>();
    for (int i = 0; i < batch; i++) {
      long xl = xLens.get(i);
      long cl = capLens.get(i);
      unified.add(torch.cat(new TensorVector(x.select(0, i).narrow(0, 0, xl), cap.select(0, i).narrow(0, 0, cl)), 0));
      uCos.add(torch.cat(new TensorVector(xRope.cos().select(0, i).narrow(0, 0, xl), capRope.cos().select(0, i).narrow(0, 0, cl)), 0));
      uSin.add(torch.cat(new TensorVector(xRope.sin().select(0, i).narrow(0, 0, xl), capRope.sin().select(0, i).narrow(0, 0, cl)), 0));
      uLens.add(xl + cl);
    }
    Tensor u = padSequence(unified);
    Args uArgs = new Args(keepMask(uLens, u.size(1)), new Rope.CosSin(padSequence(uCos), padSequence(uSin)), adaln,
        attention());
    long unifiedLen = u.size(1);
    SequenceParallel sp = sequenceParallel();
    u = CONTEXT_PARALLEL_PLAN.split(sp, "layers.x", u);
    u = layers.forward(u, null, split(sp, "layers", uArgs), step).hidden();

    // FinalLayer: scale-only modulation, then unpatchify each image's own tokens.
    Tensor scale = head.finalModulation().forward(Activations.silu(adaln)).add(new Scalar(1.0));
    u = head.finalLinear().forward(Norms.layerNorm(u, 1e-6).mul(scale.unsqueeze(1)));
    u = CONTEXT_PARALLEL_PLAN.gather(sp, "all_final_layer", u, unifiedLen);
    List<Tensor> out = new ArrayList<>();
    for (int i = 0; i < batch; i++) {
      long[] s = sizes.get(i);
      long ft = s[1] / fPatch;
      long ht = s[2] / patch;
      long wt = s[3] / patch;
      out.add(u.select(0, i).narrow(0, 0, ft * ht * wt).view(ft, ht, wt, fPatch, patch, patch, c)
          .permute(6, 0, 3, 1, 4, 2, 5).reshape(c, s[1], s[2], s[3]));
    }
    return out;
  }

  /** A refiner stage: split at its first block, gathered after its last (whole again for the unified stream). */
  private Tensor refine(List<ZImageTransformerBlock> stage, String name, Tensor x, Args args) {
    if (stage.isEmpty()) {
      return x;
    }
    SequenceParallel sp = sequenceParallel();
    long length = x.size(1);
    Args local = split(sp, name, args);
    Tensor h = CONTEXT_PARALLEL_PLAN.split(sp, name + ".x", x);
    for (ZImageTransformerBlock b : stage) {
      h = b.forward(h, local);
    }
    return CONTEXT_PARALLEL_PLAN.gather(sp, name + ".out", h, length);
  }

  /** This rank's rows of a stage's RoPE tables and key mask. */
  private static Args split(SequenceParallel sp, String stage, Args a) {
    if (!sp.active()) {
      return a;
    }
    return new Args(CONTEXT_PARALLEL_PLAN.split(sp, stage + ".attn_mask", a.mask()),
        new Rope.CosSin(CONTEXT_PARALLEL_PLAN.split(sp, stage + ".freqs_cis", a.rope().cos()),
            CONTEXT_PARALLEL_PLAN.split(sp, stage + ".freqs_cis", a.rope().sin())), a.adaln(), a.backend());
  }

  /**
   * Where Z-Image splits its sequences under context parallelism (cache-dit's plan): each stage's
   * padded token batch at its first block, with the rows of its RoPE table and key mask
   * ({@code noise_refiner}, {@code context_refiner}, then the unified {@code layers}); the refiners'
   * outputs gathered after their last block, the main stack's after {@code all_final_layer}.
   */
  public static final ContextParallelPlan CONTEXT_PARALLEL_PLAN;

  static {
    List<ContextParallelPlan.Point> points = new ArrayList<>();
    for (String stage : List.of("noise_refiner", "context_refiner", "layers")) {
      points.add(ContextParallelPlan.split(stage + ".x", 1, 3, stage + "'s tokens [B, S, dim]"));
      points.add(ContextParallelPlan.split(stage + ".freqs_cis", 1, 3, stage + "'s RoPE rows [B, S, head_dim]"));
      points.add(ContextParallelPlan.split(stage + ".attn_mask", 3, 4, stage + "'s key mask [B, 1, 1, S]"));
      if (!stage.equals("layers")) {
        points.add(ContextParallelPlan.gather(stage + ".out", 1, 3, stage + "'s output [B, S, dim]"));
      }
    }
    points.add(ContextParallelPlan.gather("all_final_layer", 1, 3, "the final layer's output [B, S, patch*C]"));
    CONTEXT_PARALLEL_PLAN = ContextParallelPlan.of("ZImageTransformer2DModel", points);
  }

  @Override
  public java.util.Optional<ContextParallelPlan> contextParallelPlan() {
    return java.util.Optional.of(CONTEXT_PARALLEL_PLAN);
  }

  /**
   * Diffusers-named inputs: {@code x} and {@code cap_feats} as stacked tensors or numbered items
   * ({@code cap_feats.0}, ...), {@code t}; JSON values {@code patch_size}, {@code f_patch_size},
   * {@code return_dict}. Returns the predictions stacked to [B, C, F, H, W] (all images must share one
   * size); {@link #outputs} returns them one per image, as diffusers' list output.
   */
  /**
   * Which layers Z-Image splits under tensor parallelism, in the refiners and the main layers alike:
   * query, key and value projections and the SwiGLU's {@code w1} and {@code w3} by output features,
   * the attention output and {@code w2} by input features, and the adaLN modulation by output
   * features with its output gathered.
   */
  public static final TensorParallelPlan TENSOR_PARALLEL_PLAN = new TensorParallelPlan("ZImageTransformer2DModel",
      List.of(TensorParallelPlan.columns("{noise_refiner,context_refiner,layers}.*.attention.{to_q,to_k,to_v}"),
          TensorParallelPlan.rows("{noise_refiner,context_refiner,layers}.*.attention.to_out.0"),
          TensorParallelPlan.columns("{noise_refiner,context_refiner,layers}.*.feed_forward.{w1,w3}"),
          TensorParallelPlan.rows("{noise_refiner,context_refiner,layers}.*.feed_forward.w2"),
          TensorParallelPlan.gathered("{noise_refiner,context_refiner,layers}.*.adaLN_modulation.0")),
      c -> java.util.Map.of("attention heads (n_heads)", (long) c.getInt("n_heads", 30),
          "feed-forward hidden units (int(dim / 3 * 8))", (long) (c.getInt("dim", 3840) / 3.0 * 8)));

  @Override
  public java.util.Optional<TensorParallelPlan> tensorParallelPlan() {
    return java.util.Optional.of(TENSOR_PARALLEL_PLAN);
  }

  @Override
  public Tensor forward(ForwardInputs in, StepContext step) {
    List<Tensor> out = forwardList(in, step);
    TensorVector v = new TensorVector();
    for (Tensor o : out) {
      if (!Arrays.equals(o.sizes().vec().get(), out.get(0).sizes().vec().get())) {
        throw new IllegalArgumentException("images of different sizes cannot be stacked into one sample; use"
            + " outputs(...) (sample.0, sample.1, ...) or call forward(List, ...) directly");
      }
      v.push_back(o);
    }
    return torch.stack(v, 0);
  }

  /** diffusers returns {@code sample} as a list: here {@code sample.0}, {@code sample.1}, ... */
  @Override
  public java.util.Map<String, Tensor> outputs(ForwardInputs in, StepContext step) {
    java.util.Map<String, Tensor> m = new java.util.LinkedHashMap<>();
    List<Tensor> out = forwardList(in, step);
    for (int i = 0; i < out.size(); i++) {
      m.put("sample." + i, out.get(i));
    }
    return m;
  }

  private List<Tensor> forwardList(ForwardInputs in, StepContext step) {
    int patch = ((Number) in.value("patch_size", 2)).intValue();
    int fPatch = ((Number) in.value("f_patch_size", 1)).intValue();
    in.value("return_dict", null);
    List<Tensor> out = forward(in.tensorList("x"), in.tensor("t"), in.tensorList("cap_feats"), patch, fPatch, step);
    in.checkAllUsed("ZImageTransformer2DModel");
    return out;
  }

  @Override
  public String configJson() {
    return config.toJson();
  }

  /** {@code ZImageTransformerBlock}: sandwich-normed attention and SwiGLU MLP, optionally modulated. */
  static final class ZImageTransformerBlock {
    private final long heads;
    private final double eps;
    private final Linear toQ;
    private final Linear toK;
    private final Linear toV;
    private final Linear toOut;
    private final Tensor normQ;
    private final Tensor normK;
    private final Linear w1;
    private final Linear w2;
    private final Linear w3;
    private final Tensor attentionNorm1;
    private final Tensor attentionNorm2;
    private final Tensor ffnNorm1;
    private final Tensor ffnNorm2;
    private final Linear modulation;

    ZImageTransformerBlock(WeightScope w, Config c, boolean modulated) {
      long dim = c.dim();
      this.heads = TensorParallel.of(w).local(c.nHeads());  // this rank's heads under tensor parallelism
      this.eps = c.normEps();
      WeightScope a = w.pp("attention");
      this.toQ = new Linear(a.pp("to_q"), dim, dim, false);
      this.toK = new Linear(a.pp("to_k"), dim, dim, false);
      this.toV = new Linear(a.pp("to_v"), dim, dim, false);
      this.toOut = new Linear(a.pp("to_out").pp(0), dim, dim, false);
      this.normQ = c.qkNorm() ? a.pp("norm_q").get("weight", c.headDim()) : null;
      this.normK = c.qkNorm() ? a.pp("norm_k").get("weight", c.headDim()) : null;
      long hidden = (long) (dim / 3.0 * 8);  // python's int(dim / 3 * 8)
      this.w1 = new Linear(w.pp("feed_forward").pp("w1"), dim, hidden, false);
      this.w2 = new Linear(w.pp("feed_forward").pp("w2"), hidden, dim, false);
      this.w3 = new Linear(w.pp("feed_forward").pp("w3"), dim, hidden, false);
      this.attentionNorm1 = w.pp("attention_norm1").get("weight", dim);
      this.attentionNorm2 = w.pp("attention_norm2").get("weight", dim);
      this.ffnNorm1 = w.pp("ffn_norm1").get("weight", dim);
      this.ffnNorm2 = w.pp("ffn_norm2").get("weight", dim);
      this.modulation = modulated ? new Linear(w.pp("adaLN_modulation").pp(0), c.adalnDim(), 4 * dim) : null;
    }

    private Tensor attention(Tensor x, Args a) {
      // values, queries, keys in the order a parallel backend overlaps their exchanges with
      Tensor o = a.backend().attendDeferred(
          () -> Attention.heads(toV.forward(x), heads),
          () -> Rope.applyBatched(qkNorm(Attention.heads(toQ.forward(x), heads), normQ), a.rope()),
          () -> Rope.applyBatched(qkNorm(Attention.heads(toK.forward(x), heads), normK), a.rope()),
          a.mask()).get();
      return toOut.forward(Attention.merge(o).to(x.scalar_type()));
    }

    private static Tensor qkNorm(Tensor t, Tensor weight) {
      return weight == null ? t : Norms.rmsNorm(t, weight, 1e-5);
    }

    private Tensor feedForward(Tensor x) {
      return w2.forward(Activations.silu(w1.forward(x)).mul(w3.forward(x)));
    }

    Tensor forward(Tensor x, Args a) {
      if (modulation == null) {
        Tensor h = x.add(Norms.rmsNorm(attention(Norms.rmsNorm(x, attentionNorm1, eps), a), attentionNorm2, eps));
        return h.add(Norms.rmsNorm(feedForward(Norms.rmsNorm(h, ffnNorm1, eps)), ffnNorm2, eps));
      }
      TensorVector m = modulation.forward(a.adaln()).unsqueeze(1).chunk(4, 2);
      Tensor scaleMsa = m.get(0).add(new Scalar(1.0));
      Tensor gateMsa = m.get(1).tanh();
      Tensor scaleMlp = m.get(2).add(new Scalar(1.0));
      Tensor gateMlp = m.get(3).tanh();
      Tensor attn = attention(Norms.rmsNorm(x, attentionNorm1, eps).mul(scaleMsa), a);
      Tensor h = x.add(gateMsa.mul(Norms.rmsNorm(attn, attentionNorm2, eps)));
      Tensor ff = feedForward(Norms.rmsNorm(h, ffnNorm1, eps).mul(scaleMlp));
      return h.add(gateMlp.mul(Norms.rmsNorm(ff, ffnNorm2, eps)));
    }
  }
}
