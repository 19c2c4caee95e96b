package io.cachedit.models.wan;

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
import io.cachedit.models.common.FeedForward;
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
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * Wan 2.1 / 2.2 video transformer (T2V, and I2V with CLIP image context): a 3-D patch embedding,
 * blocks of self-attention with 3-axis RoPE, cross-attention to the text (and image) tokens and a
 * GELU MLP, all modulated by a per-block scale/shift table plus the timestep projection; fp32 norms
 * and modulation as in diffusers' {@code transformer_wan.py}. The block list {@code blocks} follows
 * pattern 2 (encoder states in, hidden states out). Wan 2.2 MoE pipelines hold two of these.
 */
public final class WanTransformer3DModel extends AbstractDiffusersTransformer {
  /** config.json of {@code WanTransformer3DModel}. */
  public record Config(int[] patchSize, int numAttentionHeads, int attentionHeadDim, int inChannels, int outChannels,
      int textDim, int freqDim, int ffnDim, int numLayers, boolean crossAttnNorm, String qkNorm, double eps,
      Integer imageDim, Integer addedKvProjDim, int ropeMaxSeqLen, Integer posEmbedSeqLen) {
    public Config {
      if (patchSize.length != 3 || numAttentionHeads < 1 || attentionHeadDim < 6 || attentionHeadDim % 2 != 0) {
        throw new IllegalArgumentException("invalid Wan config: patch_size needs 3 values, attention_head_dim an even"
            + " size >= 6 (its rotary axes)");
      }
      io.cachedit.models.common.ConfigChecks.innerDim(numAttentionHeads, attentionHeadDim);
    }

    public int innerDim() {
      return numAttentionHeads * attentionHeadDim;
    }

    public static Config fromJson(JsonConfig c) {
      int in = c.getInt("in_channels", 16);
      Integer out = c.getIntOrNull("out_channels");
      Config cfg = new Config(c.getIntArray("patch_size", new int[] {1, 2, 2}), c.getInt("num_attention_heads", 40),
          c.getInt("attention_head_dim", 128), in, out == null ? in : out, c.getInt("text_dim", 4096),
          c.getInt("freq_dim", 256), c.getInt("ffn_dim", 13824), c.getInt("num_layers", 40),
          c.getBool("cross_attn_norm", true), c.getString("qk_norm", "rms_norm_across_heads"), c.getDouble("eps", 1e-6),
          c.getIntOrNull("image_dim"), c.getIntOrNull("added_kv_proj_dim"), c.getInt("rope_max_seq_len", 1024),
          c.getIntOrNull("pos_embed_seq_len"));
      c.warnUnused("WanTransformer3DModel");
      return cfg;
    }

    public String toJson() {
      return "{\n  \"_class_name\": \"WanTransformer3DModel\",\n  \"patch_size\": " + Arrays.toString(patchSize)
          + ",\n  \"num_attention_heads\": " + numAttentionHeads + ",\n  \"attention_head_dim\": " + attentionHeadDim
          + ",\n  \"in_channels\": " + inChannels + ",\n  \"out_channels\": " + outChannels + ",\n  \"text_dim\": "
          + textDim + ",\n  \"freq_dim\": " + freqDim + ",\n  \"ffn_dim\": " + ffnDim + ",\n  \"num_layers\": "
          + numLayers + ",\n  \"cross_attn_norm\": " + crossAttnNorm + ",\n  \"qk_norm\": \"" + qkNorm
          + "\",\n  \"eps\": " + eps + ",\n  \"image_dim\": " + imageDim + ",\n  \"added_kv_proj_dim\": "
          + addedKvProjDim + ",\n  \"rope_max_seq_len\": " + ropeMaxSeqLen + ",\n  \"pos_embed_seq_len\": "
          + posEmbedSeqLen + "\n}\n";
    }
  }

  record Args(Tensor timestepProj, Rope.CosSin rope, AttentionBackend backend) {}

  private final Config config;
  private final Tensor patchWeight;
  private final Tensor patchBias;
  private final Timesteps.Mlp timeEmbedder;
  private final Linear timeProj;
  private final Timesteps.Mlp textEmbedder;
  private final ImageEmbedding imageEmbedder;
  private final BlockList<Args> blocks;
  private final Linear projOut;
  private final Tensor scaleShiftTable;
  private final Rope.CosSin[] ropeTables;  // per axis, [max_seq_len, dim]
  private final io.cachedit.kernels.NativeScope tables =
      io.cachedit.kernels.NativeScope.owner("WanTransformer3DModel RoPE tables");

  public WanTransformer3DModel(Config config, WeightScope w) {
    super("WanTransformer3DModel", w);
    this.config = config;
    long inner = config.innerDim();
    int[] p = config.patchSize();
    this.patchWeight = w.pp("patch_embedding").get("weight", inner, config.inChannels(), p[0], p[1], p[2]);
    this.patchBias = w.pp("patch_embedding").get("bias", inner);
    WeightScope ce = w.pp("condition_embedder");
    // diffusers keeps time_embedder, scale_shift_table and norm1/2/3 in fp32 (_keep_in_fp32_modules)
    this.timeEmbedder = new Timesteps.Mlp(ce.pp("time_embedder").fp32(), config.freqDim(), inner);
    this.timeProj = new Linear(ce.pp("time_proj"), inner, 6 * inner);
    this.textEmbedder = new Timesteps.Mlp(ce.pp("text_embedder"), config.textDim(), inner, inner, "gelu_tanh");
    this.imageEmbedder = config.imageDim() == null ? null
        : new ImageEmbedding(ce.pp("image_embedder"), config.imageDim(), inner, config.posEmbedSeqLen());
    List<io.cachedit.models.common.Block<Args>> list = new ArrayList<>();
    for (int i = 0; i < config.numLayers(); i++) {
      WanTransformerBlock b = new WanTransformerBlock(w.pp("blocks").pp(i), config);
      list.add((h, e, a) -> BlockIO.of(b.forward(h, e, a)));
      w.pp("blocks").pp(i).pp("attn1").allowUnused("norm_added_q.weight");
      w.pp("blocks").pp(i).pp("attn2").allowUnused("norm_added_q.weight");
    }
    this.blocks = new BlockList<>("blocks", ForwardPattern.PATTERN_2, list);
    this.projOut = new Linear(w.pp("proj_out"), inner, (long) config.outChannels() * p[0] * p[1] * p[2]);
    this.scaleShiftTable = w.fp32().get("scale_shift_table", 1, 2, inner);
    finishLoading(w);
    int d = config.attentionHeadDim();
    int hw = 2 * (d / 6);
    int[] dims = {d - 2 * hw, hw, hw};
    this.ropeTables = new Rope.CosSin[3];
    Tensor positions = torch.arange(new Scalar(config.ropeMaxSeqLen())).to(ScalarType.Double);
    for (int a = 0; a < 3; a++) {
      Rope.CosSin cs = Rope.rotary1d(dims[a], positions, 10000.0);
      ropeTables[a] = new Rope.CosSin(tables.keep(cs.cos()), tables.keep(cs.sin()));
    }
  }

  public Config config() {
    return config;
  }

  @Override
  public List<BlockList<?>> blockLists() {
    return List.of(blocks);
  }

  /** The [S, D] rotary tables of a (frames, rows, cols) token grid (diffusers' WanRotaryPosEmbed). */
  Rope.CosSin rope(long f, long h, long w) {
    long max = config.ropeMaxSeqLen();
    if (f > max || h > max || w > max) {
      throw new IllegalArgumentException("the latent grid " + f + "x" + h + "x" + w + " exceeds rope_max_seq_len "
          + max);
    }
    Tensor[] cos = new Tensor[3];
    Tensor[] sin = new Tensor[3];
    long[] sizes = {f, h, w};
    for (int a = 0; a < 3; a++) {
      long dim = ropeTables[a].cos().size(1);
      long[] view = {1, 1, 1, dim};
      view[a] = sizes[a];
      cos[a] = ropeTables[a].cos().narrow(0, 0, sizes[a]).view(view).expand(f, h, w, dim);
      sin[a] = ropeTables[a].sin().narrow(0, 0, sizes[a]).view(view).expand(f, h, w, dim);
    }
    return new Rope.CosSin(torch.cat(new TensorVector(cos[0], cos[1], cos[2]), -1).reshape(f * h * w, -1),
        torch.cat(new TensorVector(sin[0], sin[1], sin[2]), -1).reshape(f * h * w, -1));
  }

  /**
   * The Wan forward.
   *
   * @param hidden latents [B, C, F, H, W]
   * @param timestep [B] in 0..1000
   * @param encoder text embeddings [B, S_txt, text_dim]
   * @param encoderImage CLIP image embeddings [B, S_img, image_dim] (I2V) or null
   * @param step where this call sits (may be null)
   * @return [B, out_channels, F, H, W]
   */
  public Tensor forward(Tensor hidden, Tensor timestep, Tensor encoder, Tensor encoderImage, StepContext step) {
    ensureOpen();
    if (hidden.dim() != 5) {
      throw new IllegalArgumentException("hidden_states must be [B, C, F, H, W], got "
          + Arrays.toString(hidden.sizes().vec().get()));
    }
    if (timestep.dim() != 1) {
      throw new IllegalArgumentException("timestep must be [B] (per-token timesteps of Wan 2.2 TI2V are not supported)");
    }
    int[] p = config.patchSize();
    long b = hidden.size(0);
    long ppf = hidden.size(2) / p[0];
    long pph = hidden.size(3) / p[1];
    long ppw = hidden.size(4) / p[2];
    Rope.CosSin rope = rope(ppf, pph, ppw);
    Tensor x = torch.conv3d(hidden.to(dtype), patchWeight, new TensorOptional(patchBias),
        new long[] {p[0], p[1], p[2]}, new long[] {0, 0, 0}, new long[] {1, 1, 1}, 1);
    x = x.flatten(2, -1).transpose(1, 2);
    long tokens = x.size(1);
    SequenceParallel sp = sequenceParallel();
    if (sp.active()) {  // this rank's video tokens and their RoPE rows; the text stays whole
      x = CONTEXT_PARALLEL_PLAN.split(sp, "hidden_states", x);
      rope = new Rope.CosSin(CONTEXT_PARALLEL_PLAN.split(sp, "rotary_emb", rope.cos()),
          CONTEXT_PARALLEL_PLAN.split(sp, "rotary_emb", rope.sin()));
    }
    Tensor e = encoder.to(dtype);
    Tensor temb = timeEmbedder.forward(Timesteps.embedding(timestep, config.freqDim(), true, 0).to(dtype)).to(dtype);
    Tensor timestepProj = timeProj.forward(Activations.silu(temb)).unflatten(1, new long[] {6, -1});
    e = textEmbedder.forward(e);
    if (encoderImage != null) {
      if (imageEmbedder == null) {
        throw new IllegalArgumentException("encoder_hidden_states_image was given but this Wan model has no image_dim");
      }
      e = torch.cat(new TensorVector(imageEmbedder.forward(encoderImage.to(dtype)), e), 1);
    }
    x = blocks.forward(x, e, new Args(timestepProj, rope, attention()), step).hidden();
    Tensor ss = scaleShiftTable.add(temb.unsqueeze(1));
    Tensor shift = ss.narrow(1, 0, 1);
    Tensor scale = ss.narrow(1, 1, 1);
    x = Norms.fp32LayerNorm(x, null, null, config.eps()).mul(scale.add(new Scalar(1.0))).add(shift).to(x.scalar_type());
    x = CONTEXT_PARALLEL_PLAN.gather(sp, "proj_out", projOut.forward(x), tokens);
    return x.reshape(b, ppf, pph, ppw, p[0], p[1], p[2], -1).permute(0, 7, 1, 4, 2, 5, 3, 6)
        .flatten(6, 7).flatten(4, 5).flatten(2, 3);
  }

  /**
   * Where Wan splits its sequence under context parallelism (diffusers' {@code _cp_plan}): the patch
   * tokens entering {@code blocks.0} and the rows of the RoPE tables; {@code proj_out}'s output
   * gathered. Cross-attention keys (text, CLIP image) are not split: each rank attends to them whole.
   */
  public static final ContextParallelPlan CONTEXT_PARALLEL_PLAN = ContextParallelPlan.of("WanTransformer3DModel",
      List.of(ContextParallelPlan.split("hidden_states", 1, 3, "patch tokens entering blocks.0 [B, S, inner]"),
          ContextParallelPlan.split("rotary_emb", 0, 2, "RoPE rows of the patch tokens [S, head_dim]"),
          ContextParallelPlan.gather("proj_out", 1, 3, "the prediction per patch token [B, S, C_out * patch]")));

  @Override
  public java.util.Optional<ContextParallelPlan> contextParallelPlan() {
    return java.util.Optional.of(CONTEXT_PARALLEL_PLAN);
  }

  /**
   * Which layers Wan splits under tensor parallelism: per block the self- and cross-attention query,
   * key and value projections (and the image branch's) and the FFN's first linear by output
   * features, attention outputs and the FFN's second linear by input features. The q/k RMSNorms
   * normalise across all heads: each rank keeps its share of their weights, and the mean of squares
   * is summed over the group.
   */
  public static final TensorParallelPlan TENSOR_PARALLEL_PLAN = new TensorParallelPlan("WanTransformer3DModel",
      List.of(TensorParallelPlan.columns("blocks.*.{attn1,attn2}.{to_q,to_k,to_v,add_k_proj,add_v_proj}"),
          TensorParallelPlan.rows("blocks.*.{attn1,attn2}.to_out.0"),
          TensorParallelPlan.features("blocks.*.{attn1,attn2}.{norm_q,norm_k,norm_added_k}"),
          TensorParallelPlan.columns("blocks.*.ffn.net.0.proj"),
          TensorParallelPlan.rows("blocks.*.ffn.net.2")),
      c -> java.util.Map.of("attention heads (num_attention_heads)", (long) c.getInt("num_attention_heads", 40),
          "FFN hidden units (ffn_dim)", (long) c.getInt("ffn_dim", 13824)));

  @Override
  public java.util.Optional<TensorParallelPlan> tensorParallelPlan() {
    return java.util.Optional.of(TENSOR_PARALLEL_PLAN);
  }

  @Override
  public Tensor forward(ForwardInputs in, StepContext step) {
    Tensor out = forward(in.tensor("hidden_states"), in.tensor("timestep"), in.tensor("encoder_hidden_states"),
        in.optional("encoder_hidden_states_image"), step);
    in.value("return_dict", null);
    in.value("attention_kwargs", null);
    in.checkAllUsed("WanTransformer3DModel");
    return out;
  }

  @Override
  public String configJson() {
    return config.toJson();
  }

  @Override
  public void close() {
    super.close();
    tables.close();
  }

  /** WanAttention: projections, RMSNorm across heads on q/k, optional image key/value branch. */
  static final class WanAttention {
    private final long heads;
    private final Linear toQ;
    private final Linear toK;
    private final Linear toV;
    private final Linear toOut;
    private final Tensor normQ;
    private final Tensor normK;
    private final Linear addK;
    private final Linear addV;
    private final Tensor normAddedK;
    private final double eps;
    private final TensorParallel tp;

    WanAttention(WeightScope w, Config c, boolean withImage) {
      long inner = c.innerDim();
      this.tp = TensorParallel.of(w);
      this.heads = tp.local(c.numAttentionHeads());  // this rank's heads under tensor parallelism
      this.eps = c.eps();
      this.toQ = new Linear(w.pp("to_q"), inner, inner);
      this.toK = new Linear(w.pp("to_k"), inner, inner);
      this.toV = new Linear(w.pp("to_v"), inner, inner);
      this.toOut = new Linear(w.pp("to_out").pp(0), inner, inner);
      this.normQ = w.pp("norm_q").get("weight", inner);
      this.normK = w.pp("norm_k").get("weight", inner);
      if (withImage) {
        long added = c.addedKvProjDim();
        this.addK = new Linear(w.pp("add_k_proj"), added, inner);
        this.addV = new Linear(w.pp("add_v_proj"), added, inner);
        this.normAddedK = w.pp("norm_added_k").get("weight", inner);
      } else {
        this.addK = this.addV = null;
        this.normAddedK = null;
      }
    }

    Tensor forward(Tensor x, Tensor context, Rope.CosSin rope, AttentionBackend backend) {
      Tensor ctx = context == null ? x : context;
      Tensor img = null;
      if (addK != null) {
        long imageLen = ctx.size(1) - 512;  // the text context is 512 tokens, as in diffusers
        img = ctx.narrow(1, 0, imageLen);
        ctx = ctx.narrow(1, imageLen, 512);
      }
      Tensor q = Attention.heads(Norms.torchRmsNorm(toQ.forward(x), normQ, eps, tp), heads);
      Tensor k = Attention.heads(Norms.torchRmsNorm(toK.forward(ctx), normK, eps, tp), heads);
      Tensor v = Attention.heads(toV.forward(ctx), heads);
      if (rope != null) {
        q = Rope.apply(q, rope);
        k = Rope.apply(k, rope);
      }
      // self-attention over the (possibly split) sequence; cross-attention to a context every rank holds whole
      Tensor o = Attention.merge(context == null ? backend.attend(q, k, v, null)
          : backend.attendCross(q, k, v, null)).to(q.scalar_type());
      if (img != null) {
        Tensor ki = Attention.heads(Norms.torchRmsNorm(addK.forward(img), normAddedK, eps, tp), heads);
        Tensor vi = Attention.heads(addV.forward(img), heads);
        o = o.add(Attention.merge(backend.attendCross(q, ki, vi, null)).to(q.scalar_type()));
      }
      return toOut.forward(o);
    }
  }

  /** One Wan block: pattern 2. */
  static final class WanTransformerBlock {
    private final WanAttention attn1;
    private final WanAttention attn2;
    private final Tensor norm2Weight;
    private final Tensor norm2Bias;
    private final FeedForward ffn;
    private final Tensor scaleShiftTable;
    private final double eps;

    WanTransformerBlock(WeightScope w, Config c) {
      long inner = c.innerDim();
      this.eps = c.eps();
      this.attn1 = new WanAttention(w.pp("attn1"), c, false);
      this.attn2 = new WanAttention(w.pp("attn2"), c, c.addedKvProjDim() != null);
      this.norm2Weight = c.crossAttnNorm() ? w.pp("norm2").fp32().get("weight", inner) : null;
      this.norm2Bias = c.crossAttnNorm() ? w.pp("norm2").fp32().get("bias", inner) : null;
      this.ffn = new FeedForward(w.pp("ffn"), inner, inner, c.ffnDim(), "gelu-approximate", true);
      this.scaleShiftTable = w.fp32().get("scale_shift_table", 1, 6, inner);
    }

    Tensor forward(Tensor hidden, Tensor encoder, Args a) {
      ScalarType type = hidden.scalar_type();
      Tensor mod = scaleShiftTable.add(a.timestepProj().to(ScalarType.Float));  // [B, 6, C] in fp32
      Tensor shift = mod.narrow(1, 0, 1);
      Tensor scale = mod.narrow(1, 1, 1);
      Tensor gate = mod.narrow(1, 2, 1);
      Tensor cShift = mod.narrow(1, 3, 1);
      Tensor cScale = mod.narrow(1, 4, 1);
      Tensor cGate = mod.narrow(1, 5, 1);
      Tensor hf = hidden.to(ScalarType.Float);
      Tensor norm = Norms.fp32LayerNorm(hf, null, null, eps).mul(scale.add(new Scalar(1.0))).add(shift).to(type);
      Tensor attn = attn1.forward(norm, null, a.rope(), a.backend());
      Tensor h = hf.add(attn.mul(gate)).to(type);
      norm = norm2Weight == null ? h : Norms.fp32LayerNorm(h, norm2Weight, norm2Bias, eps).to(type);
      h = h.add(attn2.forward(norm, encoder, null, a.backend()));
      norm = Norms.fp32LayerNorm(h, null, null, eps).mul(cScale.add(new Scalar(1.0))).add(cShift).to(type);
      Tensor ff = ffn.forward(norm);
      return h.to(ScalarType.Float).add(ff.to(ScalarType.Float).mul(cGate)).to(type);
    }
  }

  /** WanImageEmbedding (I2V): fp32 layer norm, GELU MLP (mult 1), fp32 layer norm. */
  static final class ImageEmbedding {
    private final Tensor norm1Weight;
    private final Tensor norm1Bias;
    private final FeedForward ff;
    private final Tensor norm2Weight;
    private final Tensor norm2Bias;
    private final Tensor posEmbed;

    ImageEmbedding(WeightScope w, int in, long out, Integer posEmbedSeqLen) {
      this.norm1Weight = w.pp("norm1").fp32().get("weight", in);
      this.norm1Bias = w.pp("norm1").fp32().get("bias", in);
      this.ff = new FeedForward(w.pp("ff"), in, out, in, "gelu", true);
      this.norm2Weight = w.pp("norm2").fp32().get("weight", out);
      this.norm2Bias = w.pp("norm2").fp32().get("bias", out);
      this.posEmbed = posEmbedSeqLen == null ? null : w.get("pos_embed", 1, posEmbedSeqLen, in);
    }

    Tensor forward(Tensor x) {
      ScalarType type = x.scalar_type();
      if (posEmbed != null) {
        x = x.view(-1, 2 * x.size(1), x.size(2)).add(posEmbed);
      }
      Tensor h = Norms.fp32LayerNorm(x, norm1Weight, norm1Bias, 1e-5).to(type);
      h = ff.forward(h);
      return Norms.fp32LayerNorm(h, norm2Weight, norm2Bias, 1e-5).to(type);
    }
  }
}
