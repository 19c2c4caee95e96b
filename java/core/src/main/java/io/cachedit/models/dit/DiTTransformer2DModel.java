package io.cachedit.models.dit;

import io.cachedit.io.JsonConfig;
import io.cachedit.io.WeightScope;
import io.cachedit.models.common.AdaLayerNorms;
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
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * Class-conditional DiT (Peebles and Xie): sin-cos patch embedding, {@code BasicTransformerBlock}s
 * with {@code ada_norm_zero} (each block embeds timestep and class itself), an output head modulated
 * by block 0's conditioning; diffusers' {@code dit_transformer_2d.py}. Block list
 * {@code transformer_blocks}, pattern 3.
 */
public final class DiTTransformer2DModel extends AbstractDiffusersTransformer {
  /** config.json of {@code DiTTransformer2DModel}. */
  public record Config(int numAttentionHeads, int attentionHeadDim, int inChannels, int outChannels, int numLayers,
      boolean attentionBias, int sampleSize, int patchSize, String activationFn, int numEmbedsAdaNorm,
      double normEps) {
    public Config {
      io.cachedit.models.common.ConfigChecks.innerDim(numAttentionHeads, attentionHeadDim);
      io.cachedit.models.common.ConfigChecks.sampleCoversPatch(sampleSize, patchSize);
    }

    public int innerDim() {
      return numAttentionHeads * attentionHeadDim;
    }

    public static Config fromJson(JsonConfig c) {
      String norm = c.getString("norm_type", "ada_norm_zero");
      if (!norm.equals("ada_norm_zero")) {
        throw new IllegalArgumentException("norm_type \"" + norm + "\" is not supported by DiTTransformer2DModel"
            + " (only ada_norm_zero, as in diffusers)");
      }
      if (c.getBool("norm_elementwise_affine", false)) {
        throw new IllegalArgumentException("norm_elementwise_affine=true is not supported (DiT checkpoints use false)");
      }
      int in = c.getInt("in_channels", 4);
      Integer out = c.getIntOrNull("out_channels");
      Config cfg = new Config(c.getInt("num_attention_heads", 16), c.getInt("attention_head_dim", 72), in,
          out == null ? in : out, c.getInt("num_layers", 28), c.getBool("attention_bias", true),
          c.getInt("sample_size", 32), c.getInt("patch_size", 2), c.getString("activation_fn", "gelu-approximate"),
          c.getInt("num_embeds_ada_norm", 1000), c.getDouble("norm_eps", 1e-5));
      // Accepted and irrelevant at inference (dropout) or for this architecture (group norm, upcasting).
      c.getDouble("dropout", 0.0);
      c.getInt("norm_num_groups", 32);
      c.getBool("upcast_attention", false);
      c.warnUnused("DiTTransformer2DModel");
      return cfg;
    }

    public String toJson() {
      return "{\n  \"_class_name\": \"DiTTransformer2DModel\",\n  \"num_attention_heads\": " + numAttentionHeads
          + ",\n  \"attention_head_dim\": " + attentionHeadDim + ",\n  \"in_channels\": " + inChannels
          + ",\n  \"out_channels\": " + outChannels + ",\n  \"num_layers\": " + numLayers + ",\n  \"attention_bias\": "
          + attentionBias + ",\n  \"sample_size\": " + sampleSize + ",\n  \"patch_size\": " + patchSize
          + ",\n  \"activation_fn\": \"" + activationFn + "\",\n  \"num_embeds_ada_norm\": " + numEmbedsAdaNorm
          + ",\n  \"norm_type\": \"ada_norm_zero\",\n  \"norm_elementwise_affine\": false,\n  \"norm_eps\": " + normEps
          + "\n}\n";
    }
  }

  record Args(Tensor timestep, Tensor classLabels, AttentionBackend backend) {}

  private final Config config;
  private final PatchEmbed posEmbed;
  private final List<BasicTransformerBlock> blockModules = new ArrayList<>();
  private final BlockList<Args> blocks;
  private final Linear projOut1;
  private final Linear projOut2;

  public DiTTransformer2DModel(Config config, WeightScope w) {
    super("DiTTransformer2DModel", w);
    this.config = config;
    long inner = config.innerDim();
    int p = config.patchSize();
    this.posEmbed = new PatchEmbed(w.pp("pos_embed"), config.inChannels(), inner, p, config.sampleSize(), 1.0);
    w.pp("pos_embed").allowUnused("pos_embed");  // a non-persistent buffer some exports still carry
    List<io.cachedit.models.common.Block<Args>> list = new ArrayList<>();
    for (int i = 0; i < config.numLayers(); i++) {
      BasicTransformerBlock b = new BasicTransformerBlock(w.pp("transformer_blocks").pp(i), config);
      blockModules.add(b);
      list.add((h, e, a) -> new BlockIO(b.forward(h, a), null));
    }
    this.blocks = new BlockList<>("transformer_blocks", ForwardPattern.PATTERN_3, list);
    this.projOut1 = new Linear(w.pp("proj_out_1"), inner, 2 * inner);
    this.projOut2 = new Linear(w.pp("proj_out_2"), inner, (long) p * p * config.outChannels());
    finishLoading(w);
  }

  public Config config() {
    return config;
  }

  @Override
  public List<BlockList<?>> blockLists() {
    return List.of(blocks);
  }

  /**
   * The DiT forward.
   *
   * @param hidden latents [B, C, H, W]
   * @param timestep [B] (or a scalar) in 0..1000
   * @param classLabels [B] integer class ids in {@code 0..num_embeds_ada_norm}; the last one is the
   *     unconditional (null) class used for classifier-free guidance
   * @param step where this call sits (may be null)
   */
  public Tensor forward(Tensor hidden, Tensor timestep, Tensor classLabels, StepContext step) {
    ensureOpen();
    int p = config.patchSize();
    long b = hidden.size(0);
    long h = hidden.size(2) / p;
    long w = hidden.size(3) / p;
    if (hidden.size(2) % p != 0 || hidden.size(3) % p != 0) {
      throw new IllegalArgumentException("hidden_states " + hidden.size(2) + "x" + hidden.size(3)
          + " is not divisible by patch_size " + p);
    }
    Tensor t = timestep.dim() == 0 ? timestep.expand(b) : timestep;
    Tensor labels = classLabels.to(ScalarType.Long);
    long classes = blockModules.get(0).labelTableRows();
    if (labels.numel() > 0 && (labels.min().item_long() < 0 || labels.max().item_long() >= classes)) {
      throw new IllegalArgumentException("class_labels must lie in 0.." + (classes - 1) + " (" + (classes - 1)
          + " is the unconditional class)");
    }
    Tensor x = posEmbed.forward(hidden.to(dtype));
    x = blocks.forward(x, null, new Args(t, labels, attention()), step).hidden();
    Tensor conditioning = blockModules.get(0).conditioning(t, labels);
    TensorVector ss = projOut1.forward(Activations.silu(conditioning)).chunk(2, 1);
    x = AdaLayerNorms.modulate(Norms.layerNorm(x, 1e-6), ss.get(0), ss.get(1));
    x = projOut2.forward(x);
    return x.reshape(b, h, w, p, p, config.outChannels()).permute(0, 5, 1, 3, 2, 4)
        .reshape(b, config.outChannels(), h * p, w * p);
  }

  @Override
  public Tensor forward(ForwardInputs in, StepContext step) {
    in.value("return_dict", null);
    in.value("cross_attention_kwargs", null);
    Tensor out = forward(in.tensor("hidden_states"), in.tensor("timestep"), in.tensor("class_labels"), step);
    in.checkAllUsed("DiTTransformer2DModel");
    return out;
  }

  @Override
  public String configJson() {
    return config.toJson();
  }

  /** {@code BasicTransformerBlock} with {@code norm_type="ada_norm_zero"} and no cross-attention. */
  static final class BasicTransformerBlock {
    private final Timesteps.Mlp timestepEmbedder;
    private final Tensor labelTable;
    private final Linear norm1Linear;
    private final StandardAttention attn1;
    private final FeedForward ff;
    private final double eps;

    BasicTransformerBlock(WeightScope w, Config c) {
      long dim = c.innerDim();
      WeightScope emb = w.pp("norm1").pp("emb");
      this.timestepEmbedder = new Timesteps.Mlp(emb.pp("timestep_embedder"), 256, dim);
      // LabelEmbedding with class dropout keeps one extra row: the unconditional class.
      this.labelTable = emb.pp("class_embedder").pp("embedding_table").get("weight", c.numEmbedsAdaNorm() + 1, dim);
      this.norm1Linear = new Linear(w.pp("norm1").pp("linear"), dim, 6 * dim);
      this.attn1 = new StandardAttention(w.pp("attn1"), dim, dim, c.numAttentionHeads(), c.attentionHeadDim(),
          c.attentionBias());
      this.ff = new FeedForward(w.pp("ff"), dim, dim, c.activationFn());
      this.eps = c.normEps();
    }

    long labelTableRows() {
      return labelTable.size(0);
    }

    /** CombinedTimestepLabelEmbeddings: {@code timestep_embedder(proj(t)) + class_embedder(labels)}. */
    Tensor conditioning(Tensor timestep, Tensor labels) {
      Tensor proj = Timesteps.embedding(timestep, 256, true, 1).to(labelTable.scalar_type());
      return timestepEmbedder.forward(proj).add(torch.embedding(labelTable, labels));
    }

    Tensor forward(Tensor hidden, Args a) {
      TensorVector m = norm1Linear.forward(Activations.silu(conditioning(a.timestep(), a.classLabels()))).chunk(6, 1);
      // AdaLayerNormZero normalises with its own LayerNorm (eps 1e-6); norm3 uses norm_eps.
      Tensor x = AdaLayerNorms.modulate(Norms.layerNorm(hidden, 1e-6), m.get(0), m.get(1));
      Tensor h = AdaLayerNorms.addGated(hidden, m.get(2), attn1.forward(x, null, null, a.backend()));
      Tensor n = AdaLayerNorms.modulate(Norms.layerNorm(h, eps), m.get(3), m.get(4));
      return AdaLayerNorms.addGated(h, m.get(5), ff.forward(n));
    }
  }
}
