package io.cachedit.models.sd3;

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
import io.cachedit.models.common.StepContext;
import io.cachedit.models.common.TensorParallel;
import io.cachedit.models.common.TensorParallelPlan;
import io.cachedit.models.common.Timesteps;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;

/**
 * Stable Diffusion 3 / 3.5 MMDiT: patch embedding with a cropped sin-cos position table, joint
 * attention over [image; text] (optionally with per-head RMSNorm, SD3.5), dual-attention layers
 * (SD3.5 Medium: a second image self-attention), a last block that only reads the text stream;
 * diffusers' {@code transformer_sd3.py} and {@code JointTransformerBlock}. Block list
 * {@code transformer_blocks}, pattern 1.
 */
public final class SD3Transformer2DModel extends AbstractDiffusersTransformer {
  /** config.json of {@code SD3Transformer2DModel}. */
  public record Config(int sampleSize, int patchSize, int inChannels, int numLayers, int attentionHeadDim,
      int numAttentionHeads, int jointAttentionDim, int captionProjectionDim, int pooledProjectionDim,
      int outChannels, int posEmbedMaxSize, int[] dualAttentionLayers, String qkNorm) {
    public Config {
      io.cachedit.models.common.ConfigChecks.innerDim(numAttentionHeads, attentionHeadDim);
      for (int l : dualAttentionLayers) {
        if (l >= numLayers) {
          throw new IllegalArgumentException("dual_attention_layers names block " + l + " of " + numLayers
              + " (num_layers)");
        }
      }
      io.cachedit.models.common.ConfigChecks.sampleCoversPatch(sampleSize, patchSize);
    }

    public int innerDim() {
      return numAttentionHeads * attentionHeadDim;
    }

    public static Config fromJson(JsonConfig c) {
      String qk = c.getString("qk_norm", null);
      if (qk != null && !qk.equals("rms_norm")) {
        throw new IllegalArgumentException("qk_norm \"" + qk + "\" is not supported (only rms_norm)");
      }
      Config cfg = new Config(c.getInt("sample_size", 128), c.getInt("patch_size", 2), c.getInt("in_channels", 16),
          c.getInt("num_layers", 18), c.getInt("attention_head_dim", 64), c.getInt("num_attention_heads", 18),
          c.getInt("joint_attention_dim", 4096), c.getInt("caption_projection_dim", 1152),
          c.getInt("pooled_projection_dim", 2048), c.getInt("out_channels", 16), c.getInt("pos_embed_max_size", 96),
          c.getIntArray("dual_attention_layers", new int[0]), qk);
      if (cfg.captionProjectionDim() != cfg.innerDim()) {
        throw new IllegalArgumentException("caption_projection_dim (" + cfg.captionProjectionDim()
            + ") must equal num_attention_heads x attention_head_dim (" + cfg.innerDim() + ")");
      }
      c.warnUnused("SD3Transformer2DModel");
      return cfg;
    }

    public String toJson() {
      return "{\n  \"_class_name\": \"SD3Transformer2DModel\",\n  \"sample_size\": " + sampleSize + ",\n  \"patch_size\": "
          + patchSize + ",\n  \"in_channels\": " + inChannels + ",\n  \"num_layers\": " + numLayers
          + ",\n  \"attention_head_dim\": " + attentionHeadDim + ",\n  \"num_attention_heads\": " + numAttentionHeads
          + ",\n  \"joint_attention_dim\": " + jointAttentionDim + ",\n  \"caption_projection_dim\": "
          + captionProjectionDim + ",\n  \"pooled_projection_dim\": " + pooledProjectionDim + ",\n  \"out_channels\": "
          + outChannels + ",\n  \"pos_embed_max_size\": " + posEmbedMaxSize + ",\n  \"dual_attention_layers\": "
          + Arrays.toString(dualAttentionLayers) + ",\n  \"qk_norm\": " + (qkNorm == null ? "null" : "\"" + qkNorm + "\"")
          + "\n}\n";
    }
  }

  record Args(Tensor temb, Set<Integer> skip, AttentionBackend backend) {}

  private final Config config;
  private final Tensor projWeight;
  private final Tensor projBias;
  private final Tensor posEmbed;
  private final Timesteps.Mlp timestepEmbedder;
  private final Timesteps.Mlp textEmbedder;
  private final Linear contextEmbedder;
  private final BlockList<Args> blocks;
  private final AdaLayerNorms.Continuous normOut;
  private final Linear projOut;

  public SD3Transformer2DModel(Config config, WeightScope w) {
    super("SD3Transformer2DModel", w);
    this.config = config;
    long inner = config.innerDim();
    int p = config.patchSize();
    WeightScope pe = w.pp("pos_embed");
    this.projWeight = pe.pp("proj").get("weight", inner, config.inChannels(), p, p);
    this.projBias = pe.pp("proj").get("bias", inner);
    long grid = config.posEmbedMaxSize();
    this.posEmbed = pe.get("pos_embed", 1, grid * grid, inner);
    WeightScope tte = w.pp("time_text_embed");
    this.timestepEmbedder = new Timesteps.Mlp(tte.pp("timestep_embedder"), 256, inner);
    this.textEmbedder = new Timesteps.Mlp(tte.pp("text_embedder"), config.pooledProjectionDim(), inner);
    this.contextEmbedder = new Linear(w.pp("context_embedder"), config.jointAttentionDim(), config.captionProjectionDim());
    Set<Integer> dual = new TreeSet<>();
    for (int i : config.dualAttentionLayers()) {
      dual.add(i);
    }
    List<io.cachedit.models.common.Block<Args>> list = new ArrayList<>();
    for (int i = 0; i < config.numLayers(); i++) {
      JointTransformerBlock b = new JointTransformerBlock(w.pp("transformer_blocks").pp(i), config,
          i == config.numLayers() - 1, dual.contains(i));
      int index = i;
      list.add((h, e, a) -> a.skip().contains(index) ? new BlockIO(h, e) : b.forward(h, e, a));
    }
    this.blocks = new BlockList<>("transformer_blocks", ForwardPattern.PATTERN_1, list);
    this.normOut = new AdaLayerNorms.Continuous(w.pp("norm_out"), inner, inner, false, 1e-6, true);
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

  /**
   * The SD3 forward.
   *
   * @param hidden latents [B, C, H, W]
   * @param encoder text embeddings [B, S, joint_attention_dim]
   * @param pooled pooled text embeddings [B, pooled_projection_dim]
   * @param timestep [B] in 0..1000
   * @param skipLayers block indices to skip (skip-layer guidance), may be empty
   * @param step where this call sits (may be null)
   */
  public Tensor forward(Tensor hidden, Tensor encoder, Tensor pooled, Tensor timestep, Set<Integer> skipLayers,
      StepContext step) {
    ensureOpen();
    int p = config.patchSize();
    long height = hidden.size(2);
    long width = hidden.size(3);
    long h = height / p;
    long w = width / p;
    long max = config.posEmbedMaxSize();
    if (h > max || w > max) {
      throw new IllegalArgumentException("latent " + height + "x" + width + " exceeds pos_embed_max_size " + max
          + " patches");
    }
    Tensor x = torch.conv2d(hidden.to(dtype), projWeight, new TensorOptional(projBias), new long[] {p, p},
        new long[] {0, 0}, new long[] {1, 1}, 1).flatten(2, -1).transpose(1, 2);
    long top = (max - h) / 2;
    long left = (max - w) / 2;
    Tensor pos = posEmbed.reshape(1, max, max, -1).narrow(1, top, h).narrow(2, left, w).reshape(1, h * w, -1);
    x = x.add(pos).to(x.scalar_type());
    Tensor temb = timestepEmbedder.forward(Timesteps.embedding(timestep, 256, true, 0).to(dtype))
        .add(textEmbedder.forward(pooled.to(dtype)));
    Tensor e = contextEmbedder.forward(encoder.to(dtype));
    long tokens = x.size(1);
    SequenceParallel sp = sequenceParallel();
    x = CONTEXT_PARALLEL_PLAN.split(sp, "hidden_states", x);
    e = CONTEXT_PARALLEL_PLAN.split(sp, "encoder_hidden_states", e);
    x = blocks.forward(x, e, new Args(temb, skipLayers, attention()), step).hidden();
    x = CONTEXT_PARALLEL_PLAN.gather(sp, "proj_out", projOut.forward(normOut.forward(x, temb)), tokens);
    return x.reshape(x.size(0), h, w, p, p, config.outChannels()).permute(0, 5, 1, 3, 2, 4)
        .reshape(x.size(0), config.outChannels(), h * p, w * p);
  }

  /**
   * Where SD3 splits its sequence under context parallelism (cachedit's plan; SD3 has none upstream):
   * the patch tokens after the positional embedding and the projected text tokens, each along the
   * sequence; {@code proj_out}'s patch tokens gathered. Joint attention has no mask and no rotary
   * positions, so each rank's [image; text] parts attend as the whole sequence does; SD3.5's second,
   * image-only attention runs over the split image tokens.
   */
  public static final ContextParallelPlan CONTEXT_PARALLEL_PLAN = ContextParallelPlan.of("SD3Transformer2DModel",
      List.of(ContextParallelPlan.split("hidden_states", 1, 3, "patch tokens with pos_embed [B, S_img, inner]"),
          ContextParallelPlan.split("encoder_hidden_states", 1, 3, "context_embedder's tokens [B, S_txt, inner]"),
          ContextParallelPlan.gather("proj_out", 1, 3, "the prediction per patch token [B, S_img, p*p*C]")));

  @Override
  public java.util.Optional<ContextParallelPlan> contextParallelPlan() {
    return java.util.Optional.of(CONTEXT_PARALLEL_PLAN);
  }

  /**
   * Which layers SD3 splits under tensor parallelism: per block the query, key and value projections
   * (image, text and the second attention of dual-attention layers) and the MLPs' first linears by
   * output features, attention outputs and MLP second linears by input features, and the adaLN
   * modulations by output features with their outputs gathered.
   */
  public static final TensorParallelPlan TENSOR_PARALLEL_PLAN = new TensorParallelPlan("SD3Transformer2DModel",
      List.of(TensorParallelPlan.columns(
              "transformer_blocks.*.{attn,attn2}.{to_q,to_k,to_v,add_q_proj,add_k_proj,add_v_proj}"),
          TensorParallelPlan.rows("transformer_blocks.*.{attn,attn2}.{to_out.0,to_add_out}"),
          TensorParallelPlan.columns("transformer_blocks.*.{ff,ff_context}.net.0.proj"),
          TensorParallelPlan.rows("transformer_blocks.*.{ff,ff_context}.net.2"),
          TensorParallelPlan.gathered("transformer_blocks.*.{norm1,norm1_context}.linear")),
      TensorParallelPlan.heads("num_attention_heads", 18));

  @Override
  public java.util.Optional<TensorParallelPlan> tensorParallelPlan() {
    return java.util.Optional.of(TENSOR_PARALLEL_PLAN);
  }

  @Override
  public Tensor forward(ForwardInputs in, StepContext step) {
    Set<Integer> skip = new TreeSet<>();
    Object s = in.value("skip_layers", null);
    if (s instanceof List<?> l) {
      for (Object o : l) {
        skip.add(((Number) o).intValue());
      }
    }
    in.value("return_dict", null);
    in.value("joint_attention_kwargs", null);
    Tensor out = forward(in.tensor("hidden_states"), in.tensor("encoder_hidden_states"),
        in.tensor("pooled_projections"), in.tensor("timestep"), skip, step);
    in.checkAllUsed("SD3Transformer2DModel");
    return out;
  }

  @Override
  public String configJson() {
    return config.toJson();
  }

  /** diffusers' JointAttnProcessor2_0 attention (joint when the context projections exist). */
  static final class JointAttention {
    private final long heads;
    private final Linear toQ;
    private final Linear toK;
    private final Linear toV;
    private final Linear toOut;
    private final Tensor normQ;
    private final Tensor normK;
    private final Linear addQ;
    private final Linear addK;
    private final Linear addV;
    private final Tensor normAddedQ;
    private final Tensor normAddedK;
    private final Linear toAddOut;

    JointAttention(WeightScope w, Config c, boolean joint, boolean contextPreOnly) {
      long dim = c.innerDim();
      long hd = c.attentionHeadDim();
      boolean qk = c.qkNorm() != null;
      this.heads = TensorParallel.of(w).local(c.numAttentionHeads());  // this rank's heads under tensor parallelism
      this.toQ = new Linear(w.pp("to_q"), dim, dim);
      this.toK = new Linear(w.pp("to_k"), dim, dim);
      this.toV = new Linear(w.pp("to_v"), dim, dim);
      this.toOut = new Linear(w.pp("to_out").pp(0), dim, dim);
      this.normQ = qk ? w.pp("norm_q").get("weight", hd) : null;
      this.normK = qk ? w.pp("norm_k").get("weight", hd) : null;
      this.addQ = joint ? new Linear(w.pp("add_q_proj"), dim, dim) : null;
      this.addK = joint ? new Linear(w.pp("add_k_proj"), dim, dim) : null;
      this.addV = joint ? new Linear(w.pp("add_v_proj"), dim, dim) : null;
      this.normAddedQ = joint && qk ? w.pp("norm_added_q").get("weight", hd) : null;
      this.normAddedK = joint && qk ? w.pp("norm_added_k").get("weight", hd) : null;
      this.toAddOut = joint && !contextPreOnly ? new Linear(w.pp("to_add_out"), dim, dim) : null;
    }

    private Tensor project(Linear l, Tensor x, Tensor norm) {
      Tensor t = Attention.heads(l.forward(x), heads);
      return norm == null ? t : Norms.rmsNorm(t, norm, 1e-6);
    }

    /** Returns {image output, text output or null}. */
    Tensor[] forward(Tensor x, Tensor ctx, AttentionBackend backend) {
      Tensor q = project(toQ, x, normQ);
      Tensor k = project(toK, x, normK);
      Tensor v = project(toV, x, null);
      if (ctx != null) {
        q = torch.cat(new TensorVector(q, project(addQ, ctx, normAddedQ)), 2);
        k = torch.cat(new TensorVector(k, project(addK, ctx, normAddedK)), 2);
        v = torch.cat(new TensorVector(v, project(addV, ctx, null)), 2);
      }
      Tensor o = Attention.merge(backend.attend(q, k, v, null)).to(q.scalar_type());
      if (ctx == null) {
        return new Tensor[] {toOut.forward(o), null};
      }
      long n = x.size(1);
      Tensor img = toOut.forward(o.narrow(1, 0, n));
      Tensor txt = o.narrow(1, n, o.size(1) - n);
      return new Tensor[] {img, toAddOut == null ? null : toAddOut.forward(txt)};
    }
  }

  /** JointTransformerBlock (MMDiT), optionally with dual attention and a context-pre-only last block. */
  static final class JointTransformerBlock {
    private final boolean contextPreOnly;
    private final boolean dual;
    private final Linear norm1Linear;
    private final AdaLayerNorms.Zero norm1Context;
    private final AdaLayerNorms.Continuous norm1ContextContinuous;
    private final JointAttention attn;
    private final JointAttention attn2;
    private final FeedForward ff;
    private final FeedForward ffContext;

    JointTransformerBlock(WeightScope w, Config c, boolean contextPreOnly, boolean dual) {
      long dim = c.innerDim();
      this.contextPreOnly = contextPreOnly;
      this.dual = dual;
      this.norm1Linear = new Linear(w.pp("norm1").pp("linear"), dim, (dual ? 9 : 6) * dim);
      if (contextPreOnly) {
        this.norm1Context = null;
        this.norm1ContextContinuous = new AdaLayerNorms.Continuous(w.pp("norm1_context"), dim, dim, false, 1e-6, true);
      } else {
        this.norm1Context = new AdaLayerNorms.Zero(w.pp("norm1_context"), dim);
        this.norm1ContextContinuous = null;
      }
      this.attn = new JointAttention(w.pp("attn"), c, true, contextPreOnly);
      this.attn2 = dual ? new JointAttention(w.pp("attn2"), c, false, false) : null;
      this.ff = new FeedForward(w.pp("ff"), dim, dim, "gelu-approximate");
      this.ffContext = contextPreOnly ? null : new FeedForward(w.pp("ff_context"), dim, dim, "gelu-approximate");
    }

    BlockIO forward(Tensor hidden, Tensor encoder, Args a) {
      TensorVector m = norm1Linear.forward(Activations.silu(a.temb())).chunk(dual ? 9 : 6, -1);
      Tensor normed = Norms.layerNorm(hidden, 1e-6);
      Tensor x = AdaLayerNorms.modulate(normed, m.get(0), m.get(1));
      Tensor gateMsa = m.get(2);
      Tensor shiftMlp = m.get(3);
      Tensor scaleMlp = m.get(4);
      Tensor gateMlp = m.get(5);
      Tensor ctx;
      Tensor[] c = null;
      if (contextPreOnly) {
        ctx = norm1ContextContinuous.forward(encoder, a.temb());
      } else {
        c = norm1Context.forward(encoder, a.temb());
        ctx = c[0];
      }
      Tensor[] out = attn.forward(x, ctx, a.backend());
      Tensor h = AdaLayerNorms.addGated(hidden, gateMsa, out[0]);
      if (dual) {
        Tensor x2 = AdaLayerNorms.modulate(normed, m.get(6), m.get(7));
        h = AdaLayerNorms.addGated(h, m.get(8), attn2.forward(x2, null, a.backend())[0]);
      }
      Tensor n2 = AdaLayerNorms.modulate(Norms.layerNorm(h, 1e-6), shiftMlp, scaleMlp);
      h = AdaLayerNorms.addGated(h, gateMlp, ff.forward(n2));
      if (contextPreOnly) {
        return new BlockIO(h, null);
      }
      Tensor e = AdaLayerNorms.addGated(encoder, c[1], out[1]);
      Tensor ne = AdaLayerNorms.modulate(Norms.layerNorm(e, 1e-6), c[2], c[3]);
      e = AdaLayerNorms.addGated(e, c[4], ffContext.forward(ne));
      return new BlockIO(h, e);
    }
  }
}
