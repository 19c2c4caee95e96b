package io.cachedit.models.qwenimage;

import io.cachedit.io.JsonConfig;
import io.cachedit.io.WeightScope;
import io.cachedit.models.common.AdaLayerNorms;
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
import org.bytedeco.pytorch.ScalarOptional;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptions;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * Qwen-Image (and its edit variants that share the architecture): 60 double-stream blocks with
 * separate image/text modulation and MLPs, joint attention over [text; image] with per-head RMSNorm
 * and Qwen's centred 3-axis RoPE, text RMSNorm before the text projection; diffusers'
 * {@code transformer_qwenimage.py}. Block list {@code transformer_blocks}, pattern 1, separate CFG.
 */
public final class QwenImageTransformer2DModel extends AbstractDiffusersTransformer {
  /** config.json of {@code QwenImageTransformer2DModel}. */
  public record Config(int patchSize, int inChannels, int outChannels, int numLayers, int attentionHeadDim,
      int numAttentionHeads, int jointAttentionDim, int[] axesDimsRope) {
    public Config {
      if (numAttentionHeads < 1 || attentionHeadDim < 2 || attentionHeadDim % 2 != 0
          || (long) numAttentionHeads * attentionHeadDim > 65536) {
        throw new IllegalArgumentException("attention_head_dim must be even and num_attention_heads x "
            + "attention_head_dim at most 65536, got " + numAttentionHeads + " x " + attentionHeadDim);
      }
      if (axesDimsRope.length != 3 || Arrays.stream(axesDimsRope).anyMatch(d -> d < 0 || d % 2 != 0)
          || Arrays.stream(axesDimsRope).sum() != attentionHeadDim) {
        throw new IllegalArgumentException("axes_dims_rope " + Arrays.toString(axesDimsRope) + " must be three even "
            + "sizes summing to attention_head_dim " + attentionHeadDim);
      }
    }

    public int innerDim() {
      return numAttentionHeads * attentionHeadDim;
    }

    public static Config fromJson(JsonConfig c) {
      if (c.getBool("zero_cond_t", false) || c.getBool("use_additional_t_cond", false)
          || c.getBool("use_layer3d_rope", false)) {
        throw new IllegalArgumentException("Qwen-Image variants with zero_cond_t, use_additional_t_cond or "
            + "use_layer3d_rope are not supported yet");
      }
      c.getBool("guidance_embeds", false);
      int in = c.getInt("in_channels", 64);
      Integer out = c.getIntOrNull("out_channels");
      Config cfg = new Config(c.getInt("patch_size", 2), in, out == null ? 16 : out, c.getInt("num_layers", 60),
          c.getInt("attention_head_dim", 128), c.getInt("num_attention_heads", 24),
          c.getInt("joint_attention_dim", 3584), c.getIntArray("axes_dims_rope", new int[] {16, 56, 56}));
      c.warnUnused("QwenImageTransformer2DModel");
      return cfg;
    }

    public String toJson() {
      return "{\n  \"_class_name\": \"QwenImageTransformer2DModel\",\n  \"patch_size\": " + patchSize
          + ",\n  \"in_channels\": " + inChannels + ",\n  \"out_channels\": " + outChannels + ",\n  \"num_layers\": "
          + numLayers + ",\n  \"attention_head_dim\": " + attentionHeadDim + ",\n  \"num_attention_heads\": "
          + numAttentionHeads + ",\n  \"joint_attention_dim\": " + jointAttentionDim + ",\n  \"guidance_embeds\": false"
          + ",\n  \"axes_dims_rope\": " + Arrays.toString(axesDimsRope) + "\n}\n";
    }
  }

  record Args(Tensor temb, Rope.CosSin imageRope, Rope.CosSin textRope, Tensor mask, AttentionBackend backend) {}

  private final Config config;
  private final Linear imgIn;
  private final Linear txtIn;
  private final Tensor txtNorm;
  private final Timesteps.Mlp timestepEmbedder;
  private final BlockList<Args> blocks;
  private final AdaLayerNorms.Continuous normOut;
  private final Linear projOut;

  public QwenImageTransformer2DModel(Config config, WeightScope w) {
    super("QwenImageTransformer2DModel", w);
    this.config = config;
    long inner = config.innerDim();
    this.imgIn = new Linear(w.pp("img_in"), config.inChannels(), inner);
    this.txtIn = new Linear(w.pp("txt_in"), config.jointAttentionDim(), inner);
    this.txtNorm = w.pp("txt_norm").get("weight", config.jointAttentionDim());
    this.timestepEmbedder = new Timesteps.Mlp(w.pp("time_text_embed").pp("timestep_embedder"), 256, inner);
    List<io.cachedit.models.common.Block<Args>> list = new ArrayList<>();
    for (int i = 0; i < config.numLayers(); i++) {
      QwenImageTransformerBlock b = new QwenImageTransformerBlock(w.pp("transformer_blocks").pp(i), config);
      list.add(b::forward);
    }
    this.blocks = new BlockList<>("transformer_blocks", ForwardPattern.PATTERN_1, list);
    this.normOut = new AdaLayerNorms.Continuous(w.pp("norm_out"), inner, inner, false, 1e-6, true);
    this.projOut = new Linear(w.pp("proj_out"), inner, (long) config.patchSize() * config.patchSize()
        * config.outChannels());
    finishLoading(w);
  }

  public Config config() {
    return config;
  }

  @Override
  public List<BlockList<?>> blockLists() {
    return List.of(blocks);
  }

  /** Qwen's rope_params: angles index * theta^(-2i/dim) in fp32, tables repeated pairwise. */
  private static Rope.CosSin axis(Tensor positions, int dim) {
    Tensor i = torch.arange(new Scalar(0), new Scalar(dim), new Scalar(2), new TensorOptions(ScalarType.Float));
    Tensor freqs = torch.pow(new Scalar(10000.0), i.div(new Scalar((double) dim))).reciprocal();
    Tensor angles = torch.outer(positions.to(ScalarType.Float), freqs);
    return new Rope.CosSin(repeat2(angles.cos()), repeat2(angles.sin()));
  }

  private static Tensor repeat2(Tensor t) {
    return t.repeat_interleave(2L, new org.bytedeco.pytorch.LongOptional(1L), new org.bytedeco.pytorch.LongOptional());
  }

  private static Tensor range(long from, long count) {
    return torch.arange(new Scalar(from), new Scalar(from + count), new TensorOptions(ScalarType.Long));
  }

  /**
   * The image and text rotary tables (diffusers' QwenEmbedRope with scale_rope): frames at their
   * index, rows and columns centred on 0, text tokens after max(h/2, w/2) on every axis.
   */
  Rope.CosSin[] rope(List<long[]> shapes, long textLen) {
    int[] dims = config.axesDimsRope();
    TensorVector cos = new TensorVector();
    TensorVector sin = new TensorVector();
    long maxIndex = 0;
    for (int idx = 0; idx < shapes.size(); idx++) {
      long f = shapes.get(idx)[0];
      long h = shapes.get(idx)[1];
      long w = shapes.get(idx)[2];
      Rope.CosSin ft = axis(range(idx, f), dims[0]);
      Rope.CosSin ht = axis(range(-(h - h / 2), h), dims[1]);
      Rope.CosSin wt = axis(range(-(w - w / 2), w), dims[2]);
      cos.push_back(grid(ft.cos(), ht.cos(), wt.cos(), f, h, w));
      sin.push_back(grid(ft.sin(), ht.sin(), wt.sin(), f, h, w));
      maxIndex = Math.max(maxIndex, Math.max(h / 2, w / 2));
    }
    TensorVector tc = new TensorVector();
    TensorVector ts = new TensorVector();
    for (int d : dims) {
      Rope.CosSin t = axis(range(maxIndex, textLen), d);
      tc.push_back(t.cos());
      ts.push_back(t.sin());
    }
    return new Rope.CosSin[] {new Rope.CosSin(torch.cat(cos, 0), torch.cat(sin, 0)),
        new Rope.CosSin(torch.cat(tc, -1), torch.cat(ts, -1))};
  }

  private static Tensor grid(Tensor f, Tensor h, Tensor w, long nf, long nh, long nw) {
    Tensor a = f.view(nf, 1, 1, -1).expand(nf, nh, nw, f.size(1));
    Tensor b = h.view(1, nh, 1, -1).expand(nf, nh, nw, h.size(1));
    Tensor c = w.view(1, 1, nw, -1).expand(nf, nh, nw, w.size(1));
    return torch.cat(new TensorVector(a, b, c), -1).reshape(nf * nh * nw, -1);
  }

  /**
   * The Qwen-Image forward.
   *
   * @param hidden packed latents [B, S_img, in_channels]
   * @param encoder text embeddings [B, S_txt, joint_attention_dim]
   * @param encoderMask [B, S_txt] (1 = token, 0 = padding) or null
   * @param timestep [B] sigma in [0, 1] (scaled by 1000 inside the sinusoidal embedding)
   * @param imgShapes (frames, rows, cols) of the latent images of the first sample, in patches
   * @param step where this call sits (may be null)
   */
  public Tensor forward(Tensor hidden, Tensor encoder, Tensor encoderMask, Tensor timestep, List<long[]> imgShapes,
      StepContext step) {
    ensureOpen();
    Tensor h = imgIn.forward(hidden.to(dtype));
    long tokens = 0;
    for (long[] s : imgShapes) {
      tokens += s[0] * s[1] * s[2];
    }
    if (tokens != h.size(1)) {
      throw new IllegalArgumentException("img_shapes " + describe(imgShapes) + " cover " + tokens
          + " tokens but hidden_states has " + h.size(1));
    }
    Tensor t = timestep.to(dtype);
    Tensor temb = timestepEmbedder.forward(Timesteps.embedding(t, 256, true, 0, 1000, 10000).to(dtype));
    Tensor e = txtIn.forward(Norms.rmsNorm(encoder.to(dtype), txtNorm, 1e-6));
    Rope.CosSin[] rope = rope(imgShapes, e.size(1));
    SequenceParallel sp = sequenceParallel();
    if (sp.active()) {  // this rank's image and text tokens, their RoPE rows and text mask
      h = CONTEXT_PARALLEL_PLAN.split(sp, "hidden_states", h);
      e = CONTEXT_PARALLEL_PLAN.split(sp, "encoder_hidden_states", e);
      encoderMask = CONTEXT_PARALLEL_PLAN.split(sp, "encoder_hidden_states_mask", encoderMask);
      rope = new Rope.CosSin[] {
          new Rope.CosSin(CONTEXT_PARALLEL_PLAN.split(sp, "pos_embed.0", rope[0].cos()),
              CONTEXT_PARALLEL_PLAN.split(sp, "pos_embed.0", rope[0].sin())),
          new Rope.CosSin(CONTEXT_PARALLEL_PLAN.split(sp, "pos_embed.1", rope[1].cos()),
              CONTEXT_PARALLEL_PLAN.split(sp, "pos_embed.1", rope[1].sin()))};
    }
    Tensor mask = null;
    if (encoderMask != null) {
      Tensor imageMask = torch.ones(new long[] {h.size(0), h.size(1)}, new TensorOptions(ScalarType.Bool));
      mask = torch.cat(new TensorVector(encoderMask.to(ScalarType.Bool), imageMask), 1).unsqueeze(1).unsqueeze(1);
    }
    BlockIO out = blocks.forward(h, e, new Args(temb, rope[0], rope[1], mask, attention()), step);
    return CONTEXT_PARALLEL_PLAN.gather(sp, "proj_out", projOut.forward(normOut.forward(out.hidden(), temb)), tokens);
  }

  /**
   * Where Qwen-Image splits its sequence under context parallelism (diffusers' {@code _cp_plan}):
   * image tokens, text tokens and the text mask along the sequence, and the rows of both RoPE tables
   * ({@code pos_embed}'s two outputs); {@code proj_out}'s image tokens gathered. Each rank's keys are
   * its text part then its image part, and the mask covers them in that order.
   */
  public static final ContextParallelPlan CONTEXT_PARALLEL_PLAN = ContextParallelPlan.of(
      "QwenImageTransformer2DModel",
      List.of(ContextParallelPlan.split("hidden_states", 1, 3, "image tokens [B, S_img, inner]"),
          ContextParallelPlan.split("encoder_hidden_states", 1, 3, "text tokens [B, S_txt, inner]"),
          ContextParallelPlan.split("encoder_hidden_states_mask", 1, 2, "text mask [B, S_txt]"),
          ContextParallelPlan.split("pos_embed.0", 0, 2, "RoPE rows of the image tokens [S_img, D]"),
          ContextParallelPlan.split("pos_embed.1", 0, 2, "RoPE rows of the text tokens [S_txt, D]"),
          ContextParallelPlan.gather("proj_out", 1, 3, "the prediction for the image tokens [B, S_img, C]")));

  @Override
  public java.util.Optional<ContextParallelPlan> contextParallelPlan() {
    return java.util.Optional.of(CONTEXT_PARALLEL_PLAN);
  }

  private static String describe(List<long[]> shapes) {
    return shapes.stream().map(Arrays::toString).toList().toString();
  }

  /** img_shapes from JSON: [[[f, h, w], ...], ...] per sample, or [[f, h, w], ...], or [f, h, w]. */
  static List<long[]> parseShapes(Object json) {
    if (!(json instanceof List<?> list) || list.isEmpty()) {
      throw new IllegalArgumentException("img_shapes must be a list like [[[1, rows, cols]]]");
    }
    Object first = list.get(0);
    if (first instanceof Number) {
      return List.of(triple(list));
    }
    Object inner = ((List<?>) first).isEmpty() ? null : ((List<?>) first).get(0);
    List<?> sample = inner instanceof List<?> ? (List<?>) first : list;
    List<long[]> shapes = new ArrayList<>();
    for (Object s : sample) {
      shapes.add(triple((List<?>) s));
    }
    return shapes;
  }

  private static long[] triple(List<?> l) {
    if (l.size() != 3) {
      throw new IllegalArgumentException("each img_shapes entry must be [frames, rows, cols], got " + l);
    }
    return new long[] {((Number) l.get(0)).longValue(), ((Number) l.get(1)).longValue(),
        ((Number) l.get(2)).longValue()};
  }

  /**
   * Which layers Qwen-Image splits under tensor parallelism: per block the image and text streams'
   * query, key and value projections and MLP first linears by output features, the attention outputs
   * and MLP second linears by input features, and the modulations ({@code img_mod.1},
   * {@code txt_mod.1}) by output features with their outputs gathered.
   */
  public static final TensorParallelPlan TENSOR_PARALLEL_PLAN = new TensorParallelPlan("QwenImageTransformer2DModel",
      List.of(TensorParallelPlan.columns("transformer_blocks.*.attn.{to_q,to_k,to_v,add_q_proj,add_k_proj,add_v_proj}"),
          TensorParallelPlan.rows("transformer_blocks.*.attn.{to_out.0,to_add_out}"),
          TensorParallelPlan.columns("transformer_blocks.*.{img_mlp,txt_mlp}.net.0.proj"),
          TensorParallelPlan.rows("transformer_blocks.*.{img_mlp,txt_mlp}.net.2"),
          TensorParallelPlan.gathered("transformer_blocks.*.{img_mod,txt_mod}.1")),
      TensorParallelPlan.heads("num_attention_heads", 24));

  @Override
  public java.util.Optional<TensorParallelPlan> tensorParallelPlan() {
    return java.util.Optional.of(TENSOR_PARALLEL_PLAN);
  }

  @Override
  public Tensor forward(ForwardInputs in, StepContext step) {
    Object shapes = in.value("img_shapes", null);
    if (shapes == null) {
      throw new IllegalArgumentException("Qwen-Image needs img_shapes (in --args), e.g. [[[1, 64, 64]]]");
    }
    in.value("txt_seq_lens", null);
    in.value("return_dict", null);
    in.value("attention_kwargs", null);
    in.optional("guidance");
    Tensor out = forward(in.tensor("hidden_states"), in.tensor("encoder_hidden_states"),
        in.optional("encoder_hidden_states_mask"), in.tensor("timestep"), parseShapes(shapes), step);
    in.checkAllUsed("QwenImageTransformer2DModel");
    return out;
  }

  @Override
  public String configJson() {
    return config.toJson();
  }

  /** One double-stream block: pattern 1. */
  static final class QwenImageTransformerBlock {
    private final Linear imgMod;
    private final Linear txtMod;
    private final long heads;
    private final Linear toQ;
    private final Linear toK;
    private final Linear toV;
    private final Linear addQ;
    private final Linear addK;
    private final Linear addV;
    private final Tensor normQ;
    private final Tensor normK;
    private final Tensor normAddedQ;
    private final Tensor normAddedK;
    private final Linear toOut;
    private final Linear toAddOut;
    private final FeedForward imgMlp;
    private final FeedForward txtMlp;

    QwenImageTransformerBlock(WeightScope w, Config c) {
      long dim = c.innerDim();
      long hd = c.attentionHeadDim();
      this.heads = TensorParallel.of(w).local(c.numAttentionHeads());  // this rank's heads under tensor parallelism
      this.imgMod = new Linear(w.pp("img_mod").pp(1), dim, 6 * dim);
      this.txtMod = new Linear(w.pp("txt_mod").pp(1), dim, 6 * dim);
      WeightScope a = w.pp("attn");
      this.toQ = new Linear(a.pp("to_q"), dim, dim);
      this.toK = new Linear(a.pp("to_k"), dim, dim);
      this.toV = new Linear(a.pp("to_v"), dim, dim);
      this.addQ = new Linear(a.pp("add_q_proj"), dim, dim);
      this.addK = new Linear(a.pp("add_k_proj"), dim, dim);
      this.addV = new Linear(a.pp("add_v_proj"), dim, dim);
      this.normQ = a.pp("norm_q").get("weight", hd);
      this.normK = a.pp("norm_k").get("weight", hd);
      this.normAddedQ = a.pp("norm_added_q").get("weight", hd);
      this.normAddedK = a.pp("norm_added_k").get("weight", hd);
      this.toOut = new Linear(a.pp("to_out").pp(0), dim, dim);
      this.toAddOut = new Linear(a.pp("to_add_out"), dim, dim);
      this.imgMlp = new FeedForward(w.pp("img_mlp"), dim, dim, "gelu-approximate");
      this.txtMlp = new FeedForward(w.pp("txt_mlp"), dim, dim, "gelu-approximate");
    }

    private static Tensor[] chunks(Tensor t, int n) {
      TensorVector v = t.chunk(n, -1);
      Tensor[] out = new Tensor[n];
      for (int i = 0; i < n; i++) {
        out[i] = v.get(i);
      }
      return out;
    }

    /** x * (1 + scale) + shift with (shift, scale, gate) = chunk(params, 3); returns {modulated, gate}. */
    private static Tensor[] modulate(Tensor x, Tensor params) {
      Tensor[] p = chunks(params, 3);
      return new Tensor[] {AdaLayerNorms.modulate(x, p[0], p[1]), p[2].unsqueeze(1)};
    }

    private Tensor heads(Tensor x) {
      return x.unflatten(-1, new long[] {heads, -1});  // [B, S, H, D]
    }

    BlockIO forward(Tensor hidden, Tensor encoder, Args a) {
      Tensor[] imgParams = chunks(imgMod.forward(Activations.silu(a.temb())), 2);
      Tensor[] txtParams = chunks(txtMod.forward(Activations.silu(a.temb())), 2);
      Tensor[] img1 = modulate(Norms.layerNorm(hidden, 1e-6), imgParams[0]);
      Tensor[] txt1 = modulate(Norms.layerNorm(encoder, 1e-6), txtParams[0]);
      Tensor x = img1[0];
      Tensor c = txt1[0];
      // [text; image] values, queries, keys, in the order a parallel backend overlaps their exchanges with
      Tensor o = Attention.merge(a.backend().attendDeferred(
          () -> torch.cat(new TensorVector(heads(addV.forward(c)).transpose(1, 2),
              heads(toV.forward(x)).transpose(1, 2)), 2),
          () -> torch.cat(new TensorVector(
              Rope.apply(Norms.rmsNorm(heads(addQ.forward(c)), normAddedQ, 1e-6).transpose(1, 2), a.textRope()),
              Rope.apply(Norms.rmsNorm(heads(toQ.forward(x)), normQ, 1e-6).transpose(1, 2), a.imageRope())), 2),
          () -> torch.cat(new TensorVector(
              Rope.apply(Norms.rmsNorm(heads(addK.forward(c)), normAddedK, 1e-6).transpose(1, 2), a.textRope()),
              Rope.apply(Norms.rmsNorm(heads(toK.forward(x)), normK, 1e-6).transpose(1, 2), a.imageRope())), 2),
          a.mask()).get()).to(x.scalar_type());
      long textLen = encoder.size(1);
      Tensor imgAttn = toOut.forward(o.narrow(1, textLen, o.size(1) - textLen));
      Tensor txtAttn = toAddOut.forward(o.narrow(1, 0, textLen));
      Tensor h = hidden.add(img1[1].mul(imgAttn));
      Tensor e = encoder.add(txt1[1].mul(txtAttn));
      Tensor[] img2 = modulate(Norms.layerNorm(h, 1e-6), imgParams[1]);
      h = h.add(img2[1].mul(imgMlp.forward(img2[0])));
      Tensor[] txt2 = modulate(Norms.layerNorm(e, 1e-6), txtParams[1]);
      e = e.add(txt2[1].mul(txtMlp.forward(txt2[0])));
      return new BlockIO(clip(h), clip(e));
    }

    private static Tensor clip(Tensor x) {
      return x.scalar_type().intern() == ScalarType.Half
          ? x.clamp(new ScalarOptional(new Scalar(-65504.0)), new ScalarOptional(new Scalar(65504.0))) : x;
    }
  }
}
