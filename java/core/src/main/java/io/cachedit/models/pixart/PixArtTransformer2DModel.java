package io.cachedit.models.pixart;

import io.cachedit.io.JsonConfig;
import io.cachedit.io.WeightScope;
import io.cachedit.models.common.Activations;
import io.cachedit.models.common.Attention;
import io.cachedit.models.common.AttentionBackend;
import io.cachedit.models.common.BlockIO;
import io.cachedit.models.common.BlockList;
import io.cachedit.models.common.AbstractDiffusersTransformer;
import io.cachedit.models.common.FeedForward;
import io.cachedit.models.common.ForwardInputs;
import io.cachedit.models.common.ForwardPattern;
import io.cachedit.models.common.Linear;
import io.cachedit.models.common.Norms;
import io.cachedit.models.common.PatchEmbed;
import io.cachedit.models.common.StandardAttention;
import io.cachedit.models.common.StepContext;
import io.cachedit.models.common.Timesteps;
import java.util.ArrayList;
import java.util.List;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;

/**
 * PixArt-alpha / PixArt-sigma: sin-cos patch embedding, {@code BasicTransformerBlock}s with
 * {@code ada_norm_single} (one shared timestep modulation plus a per-block {@code scale_shift_table}),
 * cross-attention to the projected caption, optional resolution / aspect-ratio conditions;
 * diffusers' {@code pixart_transformer_2d.py}. Block list {@code transformer_blocks}, pattern 3 (the
 * caption travels in the block arguments, as in cache-dit's adapter).
 */
public final class PixArtTransformer2DModel extends AbstractDiffusersTransformer {
  /** config.json of {@code PixArtTransformer2DModel}. */
  public record Config(int numAttentionHeads, int attentionHeadDim, int inChannels, int outChannels, int numLayers,
      int crossAttentionDim, boolean attentionBias, int sampleSize, int patchSize, String activationFn,
      double normEps, double interpolationScale, boolean useAdditionalConditions, Integer captionChannels) {
    public Config {
      io.cachedit.models.common.ConfigChecks.innerDim(numAttentionHeads, attentionHeadDim);
      io.cachedit.models.common.ConfigChecks.sampleCoversPatch(sampleSize, patchSize);
    }

    public int innerDim() {
      return numAttentionHeads * attentionHeadDim;
    }

    public static Config fromJson(JsonConfig c) {
      String norm = c.getString("norm_type", "ada_norm_single");
      if (!norm.equals("ada_norm_single")) {
        throw new IllegalArgumentException("norm_type \"" + norm + "\" is not supported by PixArtTransformer2DModel"
            + " (only ada_norm_single, as in diffusers)");
      }
      if (c.getBool("norm_elementwise_affine", false) || c.getBool("only_cross_attention", false)) {
        throw new IllegalArgumentException("norm_elementwise_affine / only_cross_attention = true are not supported");
      }
      String attentionType = c.getString("attention_type", "default");
      if (!attentionType.equals("default")) {
        throw new IllegalArgumentException("attention_type \"" + attentionType + "\" is not supported (only default)");
      }
      Integer sample = c.getIntOrNull("sample_size");
      Integer in = c.getIntOrNull("in_channels");
      Integer patch = c.getIntOrNull("patch_size");
      if (sample == null || in == null || patch == null) {
        throw new IllegalArgumentException("PixArtTransformer2DModel needs sample_size, in_channels and patch_size");
      }
      Integer out = c.getIntOrNull("out_channels");
      double interpolation = c.getDouble("interpolation_scale", Math.max(sample / 64, 1));
      boolean useAdditional = additionalConditions(c, sample);
      Config cfg = new Config(c.getInt("num_attention_heads", 16), c.getInt("attention_head_dim", 72), in,
          out == null ? in : out, c.getInt("num_layers", 28), c.getInt("cross_attention_dim", 1152),
          c.getBool("attention_bias", true), sample, patch, c.getString("activation_fn", "gelu-approximate"),
          c.getDouble("norm_eps", 1e-6), interpolation, useAdditional, c.getIntOrNull("caption_channels"));
      if (useAdditional && cfg.innerDim() % 3 != 0) {
        throw new IllegalArgumentException("use_additional_conditions needs an inner dimension divisible by 3, got "
            + cfg.innerDim());
      }
      c.getDouble("dropout", 0.0);
      c.getInt("norm_num_groups", 32);
      c.getInt("num_embeds_ada_norm", 1000);
      c.getBool("upcast_attention", false);
      c.getBool("use_linear_projection", false);
      c.getBool("num_vector_embeds", false);
      c.warnUnused("PixArtTransformer2DModel");
      return cfg;
    }

    /** diffusers: {@code use_additional_conditions} defaults to {@code sample_size == 128}. */
    private static boolean additionalConditions(JsonConfig c, int sampleSize) {
      return c.getBool("use_additional_conditions", sampleSize == 128);
    }

    public String toJson() {
      return "{\n  \"_class_name\": \"PixArtTransformer2DModel\",\n  \"num_attention_heads\": " + numAttentionHeads
          + ",\n  \"attention_head_dim\": " + attentionHeadDim + ",\n  \"in_channels\": " + inChannels
          + ",\n  \"out_channels\": " + outChannels + ",\n  \"num_layers\": " + numLayers
          + ",\n  \"cross_attention_dim\": " + crossAttentionDim + ",\n  \"attention_bias\": " + attentionBias
          + ",\n  \"sample_size\": " + sampleSize + ",\n  \"patch_size\": " + patchSize + ",\n  \"activation_fn\": \""
          + activationFn + "\",\n  \"norm_type\": \"ada_norm_single\",\n  \"norm_elementwise_affine\": false"
          + ",\n  \"norm_eps\": " + normEps + ",\n  \"interpolation_scale\": " + interpolationScale
          + ",\n  \"use_additional_conditions\": " + useAdditionalConditions + ",\n  \"caption_channels\": "
          + captionChannels + "\n}\n";
    }
  }

  record Args(Tensor timestep, Tensor encoder, Tensor encoderMask, Tensor selfMask, AttentionBackend backend) {}

  private final Config config;
  private final PatchEmbed posEmbed;
  private final Timesteps.Mlp timestepEmbedder;
  private final Timesteps.Mlp resolutionEmbedder;
  private final Timesteps.Mlp aspectRatioEmbedder;
  private final Linear adalnLinear;
  private final Timesteps.Mlp captionProjection;
  private final BlockList<Args> blocks;
  private final Tensor scaleShiftTable;
  private final Linear projOut;

  public PixArtTransformer2DModel(Config config, WeightScope w) {
    super("PixArtTransformer2DModel", w);
    this.config = config;
    long inner = config.innerDim();
    int p = config.patchSize();
    this.posEmbed = new PatchEmbed(w.pp("pos_embed"), config.inChannels(), inner, p, config.sampleSize(),
        config.interpolationScale());
    w.pp("pos_embed").allowUnused("pos_embed");
    WeightScope emb = w.pp("adaln_single").pp("emb");
    this.timestepEmbedder = new Timesteps.Mlp(emb.pp("timestep_embedder"), 256, inner);
    this.resolutionEmbedder = config.useAdditionalConditions()
        ? new Timesteps.Mlp(emb.pp("resolution_embedder"), 256, inner / 3) : null;
    this.aspectRatioEmbedder = config.useAdditionalConditions()
        ? new Timesteps.Mlp(emb.pp("aspect_ratio_embedder"), 256, inner / 3) : null;
    this.adalnLinear = new Linear(w.pp("adaln_single").pp("linear"), inner, 6 * inner);
    this.captionProjection = config.captionChannels() == null ? null
        : new Timesteps.Mlp(w.pp("caption_projection"), config.captionChannels(), inner, inner, "gelu_tanh");
    List<io.cachedit.models.common.Block<Args>> list = new ArrayList<>();
    for (int i = 0; i < config.numLayers(); i++) {
      BasicTransformerBlock b = new BasicTransformerBlock(w.pp("transformer_blocks").pp(i), config);
      list.add((h, e, a) -> new BlockIO(b.forward(h, a), null));
    }
    this.blocks = new BlockList<>("transformer_blocks", ForwardPattern.PATTERN_3, list);
    this.scaleShiftTable = w.get("scale_shift_table", 2, inner);
    this.projOut = new Linear(w.pp("proj_out"), inner, (long) p * p * config.outChannels());
    finishLoading(w);
  }

  public Config config() {
    return config;
  }

  @Override
  public List<BlockList<?>> blockLists() {
    return List.of(blocks);
  }

  /** A keep-mask [B, S] (1 keep, 0 drop) as diffusers' additive bias [B, 1, 1, S] of 0 / -10000. */
  private Tensor bias(Tensor mask) {
    if (mask == null) {
      return null;
    }
    if (mask.dim() != 2) {
      throw new IllegalArgumentException("attention masks must be [batch, tokens] with 1 = keep, got "
          + java.util.Arrays.toString(mask.sizes().vec().get()));
    }
    return mask.to(dtype).neg().add(new Scalar(1.0)).mul(new Scalar(-10000.0)).unsqueeze(1).unsqueeze(1);
  }

  /**
   * The PixArt forward.
   *
   * @param hidden latents [B, C, H, W]
   * @param encoder caption embeddings [B, S, caption_channels] (T5 hidden states)
   * @param timestep [B] in 0..1000
   * @param resolution [B, 2] (height, width in pixels) when {@code use_additional_conditions}, else null
   * @param aspectRatio [B, 1] when {@code use_additional_conditions}, else null
   * @param encoderMask [B, S] caption keep-mask or null
   * @param selfMask [B, H*W/p^2] image keep-mask or null
   * @param step where this call sits (may be null)
   */
  public Tensor forward(Tensor hidden, Tensor encoder, Tensor timestep, Tensor resolution, Tensor aspectRatio,
      Tensor encoderMask, Tensor selfMask, StepContext step) {
    ensureOpen();
    int p = config.patchSize();
    long b = hidden.size(0);
    long h = hidden.size(2) / p;
    long w = hidden.size(3) / p;
    if (hidden.size(2) % p != 0 || hidden.size(3) % p != 0) {
      throw new IllegalArgumentException("hidden_states " + hidden.size(2) + "x" + hidden.size(3)
          + " is not divisible by patch_size " + p);
    }
    if (config.useAdditionalConditions() && (resolution == null || aspectRatio == null)) {
      throw new IllegalArgumentException("this PixArt model uses additional conditions: pass"
          + " added_cond_kwargs.resolution [B, 2] and added_cond_kwargs.aspect_ratio [B, 1]");
    }
    Tensor x = posEmbed.forward(hidden.to(dtype));
    Tensor t = timestep.dim() == 0 ? timestep.expand(b) : timestep;
    Tensor embedded = timestepEmbedder.forward(Timesteps.embedding(t, 256, true, 0).to(dtype));
    if (config.useAdditionalConditions()) {
      Tensor res = resolutionEmbedder.forward(Timesteps.embedding(resolution.flatten(), 256, true, 0).to(dtype))
          .reshape(b, -1);
      Tensor ar = aspectRatioEmbedder.forward(Timesteps.embedding(aspectRatio.flatten(), 256, true, 0).to(dtype))
          .reshape(b, -1);
      embedded = embedded.add(torch.cat(new TensorVector(res, ar), 1));
    }
    Tensor modulation = adalnLinear.forward(Activations.silu(embedded));
    Tensor e = encoder.to(dtype);
    if (captionProjection != null) {
      e = captionProjection.forward(e).view(b, -1, x.size(-1));
    }
    x = blocks.forward(x, null, new Args(modulation, e, bias(encoderMask), bias(selfMask), attention()), step).hidden();
    TensorVector ss = scaleShiftTable.unsqueeze(0).add(embedded.unsqueeze(1)).chunk(2, 1);
    x = Norms.layerNorm(x, 1e-6).mul(ss.get(1).add(new Scalar(1.0))).add(ss.get(0));
    x = projOut.forward(x);
    return x.reshape(b, h, w, p, p, config.outChannels()).permute(0, 5, 1, 3, 2, 4)
        .reshape(b, config.outChannels(), h * p, w * p);
  }

  @Override
  public Tensor forward(ForwardInputs in, StepContext step) {
    in.value("return_dict", null);
    in.value("cross_attention_kwargs", null);
    Tensor out = forward(in.tensor("hidden_states"), in.tensor("encoder_hidden_states"), in.tensor("timestep"),
        in.optional("added_cond_kwargs.resolution"), in.optional("added_cond_kwargs.aspect_ratio"),
        in.optional("encoder_attention_mask"), in.optional("attention_mask"), step);
    in.checkAllUsed("PixArtTransformer2DModel");
    return out;
  }

  @Override
  public String configJson() {
    return config.toJson();
  }

  /** {@code BasicTransformerBlock} with {@code norm_type="ada_norm_single"} and caption cross-attention. */
  static final class BasicTransformerBlock {
    private final Tensor scaleShiftTable;
    private final StandardAttention attn1;
    private final StandardAttention attn2;
    private final FeedForward ff;
    private final double eps;

    BasicTransformerBlock(WeightScope w, Config c) {
      long dim = c.innerDim();
      this.scaleShiftTable = w.get("scale_shift_table", 6, dim);
      this.attn1 = new StandardAttention(w.pp("attn1"), dim, dim, c.numAttentionHeads(), c.attentionHeadDim(),
          c.attentionBias());
      this.attn2 = new StandardAttention(w.pp("attn2"), dim, c.crossAttentionDim(), c.numAttentionHeads(),
          c.attentionHeadDim(), c.attentionBias());
      this.ff = new FeedForward(w.pp("ff"), dim, dim, c.activationFn());
      this.eps = c.normEps();
    }

    Tensor forward(Tensor hidden, Args a) {
      long b = hidden.size(0);
      TensorVector m = scaleShiftTable.unsqueeze(0).add(a.timestep().reshape(b, 6, -1)).chunk(6, 1);
      Tensor x = Norms.layerNorm(hidden, eps).mul(m.get(1).add(new Scalar(1.0))).add(m.get(0));
      Tensor h = hidden.add(m.get(2).mul(attn1.forward(x, null, a.selfMask(), a.backend())));
      // PixArt's cross-attention reads the residual stream un-normalised (diffusers: "norm2 isn't applied here").
      h = h.add(attn2.forward(h, a.encoder(), a.encoderMask(), a.backend()));
      Tensor n = Norms.layerNorm(h, eps).mul(m.get(4).add(new Scalar(1.0))).add(m.get(3));
      return h.add(m.get(5).mul(ff.forward(n)));
    }
  }
}
