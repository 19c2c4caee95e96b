package io.cachedit.models.flux;

import io.cachedit.io.WeightScope;
import io.cachedit.kernels.FusedActivation;
import io.cachedit.kernels.NativeScope;
import io.cachedit.models.common.AdaLayerNorms;
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
import java.util.List;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.ScalarOptional;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * FLUX.1 (dev, schnell, Kontext): 19 double-stream (MMDiT) blocks over text and image tokens, then 38
 * single-stream blocks over their concatenation, 3-axis RoPE from {@code txt_ids}/{@code img_ids},
 * timestep (+ guidance) + pooled-text conditioning. Parameter names and math follow diffusers'
 * {@code transformer_flux.py}.
 *
 * <p>Block lists: {@code transformer_blocks} (pattern 1) and {@code single_transformer_blocks}
 * (pattern 3, over text+image tokens). {@link #useFusedBlocks(boolean)} switches to one fused
 * pattern-1 list of all 57 blocks, as cache-dit's FLUX adapter does by default (docs/algorithms.md section 2).
 */
public final class FluxTransformer2DModel extends AbstractDiffusersTransformer {
  /**
   * What every block of a forward shares: {@code temb}, and the blocks' adaLN modulations
   * {@code linear(silu(temb))} when the {@link Conditioning} precomputed them (else null).
   */
  record Args(Tensor temb, Rope.CosSin rope, AttentionBackend backend, List<Tensor> modulations, int index) {
    /** Block slot {@code slot}'s modulation at this step: precomputed, or computed from temb now. */
    Tensor modulation(int slot, java.util.function.UnaryOperator<Tensor> compute) {
      return modulations == null ? compute.apply(temb) : modulations.get(slot).select(0, index);
    }
  }

  /** Per-generation modulations of all blocks above this size are computed per step instead. */
  static final long MODULATION_BUDGET_BYTES = 256L << 20;

  private final FluxTransformer2DModelConfig config;
  private final Linear xEmbedder;
  private final Linear contextEmbedder;
  private final Timesteps.Mlp timestepEmbedder;
  private final Timesteps.Mlp guidanceEmbedder;
  private final Timesteps.Mlp textEmbedder;
  private final AdaLayerNorms.Continuous normOut;
  private final Linear projOut;
  private final BlockList<Args> doubleBlocks;
  private final BlockList<Args> singleBlocks;
  private final BlockList<Args> fusedBlocks;
  private final List<FluxTransformerBlock> doubleBlockModules;
  private final List<FluxSingleTransformerBlock> singleBlockModules;
  private volatile boolean fused;

  /** Builds the model from weights (loaded or generated); {@link WeightScope#finish()} is called here. */
  public FluxTransformer2DModel(FluxTransformer2DModelConfig config, WeightScope w) {
    super("FluxTransformer2DModel", w);
    this.config = config;
    long inner = config.innerDim();
    this.xEmbedder = new Linear(w.pp("x_embedder"), config.inChannels(), inner);
    this.contextEmbedder = new Linear(w.pp("context_embedder"), config.jointAttentionDim(), inner);
    WeightScope tte = w.pp("time_text_embed");
    this.timestepEmbedder = new Timesteps.Mlp(tte.pp("timestep_embedder"), 256, inner);
    this.guidanceEmbedder = config.guidanceEmbeds() ? new Timesteps.Mlp(tte.pp("guidance_embedder"), 256, inner) : null;
    this.textEmbedder = new Timesteps.Mlp(tte.pp("text_embedder"), config.pooledProjectionDim(), inner);
    List<FluxTransformerBlock> doubles = new ArrayList<>();
    for (int i = 0; i < config.numLayers(); i++) {
      doubles.add(new FluxTransformerBlock(w.pp("transformer_blocks").pp(i), config, 2 * i));
    }
    List<FluxSingleTransformerBlock> singles = new ArrayList<>();
    for (int i = 0; i < config.numSingleLayers(); i++) {
      singles.add(new FluxSingleTransformerBlock(w.pp("single_transformer_blocks").pp(i), config,
          2 * config.numLayers() + i));
    }
    this.normOut = new AdaLayerNorms.Continuous(w.pp("norm_out"), inner, inner, false, 1e-6, true);
    this.projOut = new Linear(w.pp("proj_out"), inner, (long) config.patchSize() * config.patchSize()
        * config.outChannels());
    finishLoading(w);
    this.doubleBlockModules = List.copyOf(doubles);
    this.singleBlockModules = List.copyOf(singles);
    this.doubleBlocks = new BlockList<>("transformer_blocks", ForwardPattern.PATTERN_1,
        doubles.stream().map(b -> (io.cachedit.models.common.Block<Args>) b::forward).toList());
    this.singleBlocks = new BlockList<>("single_transformer_blocks", ForwardPattern.PATTERN_3,
        singles.stream().map(b -> (io.cachedit.models.common.Block<Args>) (h, e, a) -> BlockIO.of(b.forward(h, a)))
            .toList());
    List<io.cachedit.models.common.Block<Args>> all = new ArrayList<>(doubleBlocks.blocks());
    for (FluxSingleTransformerBlock s : singles) {
      all.add(s::forwardPair);
    }
    this.fusedBlocks = new BlockList<>("transformer_blocks", ForwardPattern.PATTERN_1, all);
  }

  public FluxTransformer2DModelConfig config() {
    return config;
  }

  /** Runs the single-stream blocks inside the double-stream list (one pattern-1 list of all blocks). */
  public void useFusedBlocks(boolean useFused) {
    this.fused = useFused;
  }

  public boolean usesFusedBlocks() {
    return fused;
  }

  @Override
  public List<BlockList<?>> blockLists() {
    return fused ? List.of(fusedBlocks) : List.of(doubleBlocks, singleBlocks);
  }

  /**
   * The FLUX forward.
   *
   * @param hidden packed latents [B, S_img, in_channels]
   * @param encoder text embeddings [B, S_txt, joint_attention_dim]
   * @param pooled pooled text embedding [B, pooled_projection_dim]
   * @param timestep [B] in [0, 1] (sigma); multiplied by 1000 here as diffusers does
   * @param imgIds [S_img, 3] (or [B, S_img, 3], first batch used)
   * @param txtIds [S_txt, 3]
   * @param guidance [B] guidance scale, or null for models without guidance embeds
   * @param step where this call sits (may be null)
   * @return the prediction [B, S_img, patch^2 * out_channels]
   */
  public Tensor forward(Tensor hidden, Tensor encoder, Tensor pooled, Tensor timestep, Tensor imgIds, Tensor txtIds,
      Tensor guidance, StepContext step) {
    ensureOpen();
    return forward(hidden, encoder, pooled, timestep, rotaryEmbedding(imgIds, txtIds), guidance, step);
  }

  /**
   * FLUX's {@code pos_embed(cat(txt_ids, img_ids))}: the RoPE tables of one token layout. Loops that
   * call the model with the same ids every step compute them once and pass them to
   * {@link #forward(Tensor, Tensor, Tensor, Tensor, Rope.CosSin, Tensor, StepContext)}.
   */
  public Rope.CosSin rotaryEmbedding(Tensor imgIds, Tensor txtIds) {
    ensureOpen();
    Tensor ids = torch.cat(new TensorVector(ids2d(txtIds, "txt_ids"), ids2d(imgIds, "img_ids")), 0);
    return Rope.multiAxis(ids, config.axesDimsRope(), 10000);
  }

  /** The forward with precomputed RoPE tables ({@link #rotaryEmbedding}); text tokens come first in them. */
  public Tensor forward(Tensor hidden, Tensor encoder, Tensor pooled, Tensor timestep, Rope.CosSin rope,
      Tensor guidance, StepContext step) {
    ensureOpen();
    return forward(hidden, condition(encoder, pooled, timestep.unsqueeze(0), guidance), 0, rope, step);
  }

  /**
   * What a forward computes from text and timestep alone, for {@code steps} timesteps at once: the
   * projected text tokens, and per timestep {@code temb} and norm_out's modulation. Sampling loops
   * compute it once per generation ({@link #condition}) instead of once per step.
   *
   * @param encoder context_embedder(encoder_hidden_states) [B, S_txt, inner]
   * @param temb [steps, B, inner]
   * @param outScale1p 1 + norm_out's scale, [steps, B, 1, inner]
   * @param outShift norm_out's shift, [steps, B, 1, inner]
   * @param blockModulations each block's adaLN {@code linear(silu(temb))}, [steps, B, 6 or 3 * inner]:
   *     double-stream block i at 2i (norm1) and 2i + 1 (norm1_context), single-stream block j at
   *     2 * num_layers + j; null when larger than {@value #MODULATION_BUDGET_BYTES} bytes (then the
   *     blocks compute them each step)
   */
  public record Conditioning(Tensor encoder, Tensor temb, Tensor outScale1p, Tensor outShift,
      List<Tensor> blockModulations) {
    public int steps() {
      return (int) temb.size(0);
    }

    /** A copy whose tensors belong to {@code owner} (they outlive inner scopes, freed with it). */
    public Conditioning keepIn(NativeScope owner) {
      return new Conditioning(owner.keep(encoder), owner.keep(temb), owner.keep(outScale1p), owner.keep(outShift),
          blockModulations == null ? null : blockModulations.stream().map(owner::keep).toList());
    }
  }

  /**
   * Computes the step-independent inputs of {@code timesteps.size(0)} forwards in one batched pass.
   *
   * @param encoder text embeddings [B, S_txt, joint_attention_dim]
   * @param pooled pooled text embedding [B, pooled_projection_dim]
   * @param timesteps [steps, B] in [0, 1] (sigmas); multiplied by 1000 here as diffusers does
   * @param guidance [B] guidance scale, or null for models without guidance embeds
   */
  public Conditioning condition(Tensor encoder, Tensor pooled, Tensor timesteps, Tensor guidance) {
    ensureOpen();
    if (timesteps.dim() != 2 || timesteps.size(1) != pooled.size(0)) {
      throw new IllegalArgumentException("timesteps must be [steps, B] with B = " + pooled.size(0) + ", got "
          + java.util.Arrays.toString(timesteps.sizes().vec().get()));
    }
    long steps = timesteps.size(0);
    long batch = timesteps.size(1);
    Tensor t = timesteps.reshape(steps * batch).to(dtype).mul(new Scalar(1000.0));
    Tensor temb = timestepEmbedder.forward(Timesteps.embedding(t, 256, true, 0).to(dtype)).view(steps, batch, -1);
    if (guidanceEmbedder != null) {
      if (guidance == null) {
        throw new IllegalArgumentException("this FLUX model has guidance_embeds: pass a guidance tensor");
      }
      Tensor g = guidance.to(dtype).mul(new Scalar(1000.0));
      temb = temb.add(guidanceEmbedder.forward(Timesteps.embedding(g, 256, true, 0).to(dtype)).unsqueeze(0));
    }
    temb = temb.add(textEmbedder.forward(pooled.to(dtype)).unsqueeze(0)).to(dtype);
    Tensor[] scaleShift = normOut.scaleShift(temb, dtype);
    long modulationBytes = steps * batch * (12L * config.numLayers() + 3L * config.numSingleLayers())
        * config.innerDim() * temb.element_size();
    List<Tensor> modulations = null;
    if (modulationBytes <= MODULATION_BUDGET_BYTES) {
      modulations = new ArrayList<>();
      for (FluxTransformerBlock b : doubleBlockModules) {
        modulations.add(b.norm1.modulation(temb));
        modulations.add(b.norm1Context.modulation(temb));
      }
      for (FluxSingleTransformerBlock b : singleBlockModules) {
        modulations.add(b.norm.modulation(temb));
      }
    }
    return new Conditioning(contextEmbedder.forward(encoder.to(dtype)), temb,
        scaleShift[0].add(new Scalar(1.0)).unsqueeze(2), scaleShift[1].unsqueeze(2), modulations);
  }

  /**
   * The forward at timestep {@code index} of a precomputed {@link Conditioning}.
   *
   * @param hidden packed latents [B, S_img, in_channels]
   */
  public Tensor forward(Tensor hidden, Conditioning cond, int index, Rope.CosSin rope, StepContext step) {
    ensureOpen();
    Tensor e = cond.encoder();
    long imageLen = hidden.size(1);
    long fullTextLen = e.size(1);
    if (rope.cos().size(0) != imageLen + fullTextLen) {
      throw new IllegalArgumentException("RoPE tables cover " + rope.cos().size(0) + " tokens, the inputs "
          + (imageLen + fullTextLen));
    }
    SequenceParallel sp = sequenceParallel();
    if (sp.active()) {  // this rank's text and image tokens, and their rows of the RoPE tables
      hidden = CONTEXT_PARALLEL_PLAN.split(sp, "hidden_states", hidden);
      e = CONTEXT_PARALLEL_PLAN.split(sp, "encoder_hidden_states", e);
      rope = new Rope.CosSin(splitRope(sp, rope.cos(), fullTextLen), splitRope(sp, rope.sin(), fullTextLen));
    }
    Tensor h = xEmbedder.forward(hidden.to(dtype));
    Args args = new Args(cond.temb().select(0, index), rope, attention(), cond.blockModulations(), index);
    long textLen = e.size(1);
    if (fused) {
      BlockIO out = fusedBlocks.forward(h, e, args, step);
      h = out.hidden();
    } else {
      BlockIO out = doubleBlocks.forward(h, e, args, step);
      Tensor joint = torch.cat(new TensorVector(out.encoder(), out.hidden()), 1);
      joint = singleBlocks.forward(joint, null, args, step).hidden();
      h = joint.narrow(1, textLen, joint.size(1) - textLen);
    }
    // norm_out: layer_norm(h) * (1 + scale) + shift, modulation precomputed
    h = torch.addcmul(cond.outShift().select(0, index), Norms.layerNorm(h, 1e-6), cond.outScale1p().select(0, index));
    return CONTEXT_PARALLEL_PLAN.gather(sp, "proj_out", projOut.forward(h), imageLen);
  }

  /**
   * Where FLUX's sequence is split under context parallelism (diffusers' {@code _cp_plan}): text and
   * image tokens each split along the sequence, with the RoPE rows of {@code txt_ids} and
   * {@code img_ids}; {@code proj_out}'s image tokens gathered. Each rank's attention sees its text
   * part followed by its image part; attention without a mask does not depend on the tokens' order,
   * and each token keeps its own rotary position.
   */
  public static final ContextParallelPlan CONTEXT_PARALLEL_PLAN = ContextParallelPlan.of("FluxTransformer2DModel",
      List.of(ContextParallelPlan.split("hidden_states", 1, 3, "image tokens [B, S_img, C]"),
          ContextParallelPlan.split("encoder_hidden_states", 1, 3, "text tokens [B, S_txt, inner]"),
          ContextParallelPlan.split("txt_ids", 0, 2, "RoPE rows of the text tokens [S_txt, D]"),
          ContextParallelPlan.split("img_ids", 0, 2, "RoPE rows of the image tokens [S_img, D]"),
          ContextParallelPlan.gather("proj_out", 1, 3, "the prediction for the image tokens [B, S_img, C_out]")));

  @Override
  public java.util.Optional<ContextParallelPlan> contextParallelPlan() {
    return java.util.Optional.of(CONTEXT_PARALLEL_PLAN);
  }

  /**
   * Which layers FLUX splits under tensor parallelism (cache-dit's FLUX planner): in every block the
   * query, key and value projections and the MLP's first linear by output features (whole heads,
   * hidden units), the attention output and the MLP's second linear by input features, and the adaLN
   * modulation by output features with its output gathered. A single-stream block's {@code proj_out}
   * reads {@code [attention (dim) ‖ mlp (4 dim)]}: each rank keeps its share of both parts, matching its
   * local concatenation.
   */
  public static final TensorParallelPlan TENSOR_PARALLEL_PLAN = new TensorParallelPlan("FluxTransformer2DModel",
      List.of(TensorParallelPlan.columns("transformer_blocks.*.attn.{to_q,to_k,to_v,add_q_proj,add_k_proj,add_v_proj}"),
          TensorParallelPlan.rows("transformer_blocks.*.attn.{to_out.0,to_add_out}"),
          TensorParallelPlan.columns("transformer_blocks.*.{ff,ff_context}.net.0.proj"),
          TensorParallelPlan.rows("transformer_blocks.*.{ff,ff_context}.net.2"),
          TensorParallelPlan.gathered("transformer_blocks.*.{norm1,norm1_context}.linear"),
          TensorParallelPlan.columns("single_transformer_blocks.*.attn.{to_q,to_k,to_v}"),
          TensorParallelPlan.columns("single_transformer_blocks.*.proj_mlp"),
          TensorParallelPlan.rows("single_transformer_blocks.*.proj_out", 1, 4),
          TensorParallelPlan.gathered("single_transformer_blocks.*.norm.linear")),
      TensorParallelPlan.heads("num_attention_heads", 24));

  @Override
  public java.util.Optional<TensorParallelPlan> tensorParallelPlan() {
    return java.util.Optional.of(TENSOR_PARALLEL_PLAN);
  }

  private static Tensor splitRope(SequenceParallel sp, Tensor table, long textLen) {
    Tensor text = CONTEXT_PARALLEL_PLAN.split(sp, "txt_ids", table.narrow(0, 0, textLen));
    Tensor image = CONTEXT_PARALLEL_PLAN.split(sp, "img_ids", table.narrow(0, textLen, table.size(0) - textLen));
    return torch.cat(new TensorVector(text, image), 0);
  }

  private static Tensor ids2d(Tensor ids, String name) {
    if (ids.dim() == 3) {
      return ids.select(0, 0);
    }
    if (ids.dim() != 2 || ids.size(1) != 3) {
      throw new IllegalArgumentException(name + " must be [S, 3], got " + java.util.Arrays.toString(ids.sizes().vec().get()));
    }
    return ids;
  }

  @Override
  public Tensor forward(ForwardInputs in, StepContext step) {
    Tensor out = forward(in.tensor("hidden_states"), in.tensor("encoder_hidden_states"),
        in.tensor("pooled_projections"), in.tensor("timestep"), in.tensor("img_ids"), in.tensor("txt_ids"),
        in.optional("guidance"), step);
    in.value("return_dict", null);
    in.value("joint_attention_kwargs", null);
    in.checkAllUsed("FluxTransformer2DModel");
    return out;
  }

  @Override
  public String configJson() {
    return config.toJson();
  }

  static Tensor clipHalf(Tensor x) {
    return x.scalar_type().intern() == ScalarType.Half
        ? x.clamp(new ScalarOptional(new Scalar(-65504.0)), new ScalarOptional(new Scalar(65504.0))) : x;
  }

  /** FLUX attention: q/k/v (+ added text projections), per-head RMSNorm, RoPE over [text; image]. */
  static final class FluxAttention {
    private final long heads;
    private final Linear toQ;
    private final Linear toK;
    private final Linear toV;
    private final Tensor normQ;
    private final Tensor normK;
    private final Linear addQ;
    private final Linear addK;
    private final Linear addV;
    private final Tensor normAddedQ;
    private final Tensor normAddedK;
    private final Linear toOut;
    private final Linear toAddOut;

    FluxAttention(WeightScope w, FluxTransformer2DModelConfig c, boolean joint) {
      long dim = c.innerDim();
      long hd = c.attentionHeadDim();
      this.heads = TensorParallel.of(w).local(c.numAttentionHeads());  // this rank's heads under tensor parallelism
      this.toQ = new Linear(w.pp("to_q"), dim, dim);
      this.toK = new Linear(w.pp("to_k"), dim, dim);
      this.toV = new Linear(w.pp("to_v"), dim, dim);
      this.normQ = w.pp("norm_q").get("weight", hd);
      this.normK = w.pp("norm_k").get("weight", hd);
      if (joint) {
        this.addQ = new Linear(w.pp("add_q_proj"), dim, dim);
        this.addK = new Linear(w.pp("add_k_proj"), dim, dim);
        this.addV = new Linear(w.pp("add_v_proj"), dim, dim);
        this.normAddedQ = w.pp("norm_added_q").get("weight", hd);
        this.normAddedK = w.pp("norm_added_k").get("weight", hd);
        this.toOut = new Linear(w.pp("to_out").pp(0), dim, dim);
        this.toAddOut = new Linear(w.pp("to_add_out"), dim, dim);
      } else {
        this.addQ = this.addK = this.addV = this.toOut = this.toAddOut = null;
        this.normAddedQ = this.normAddedK = null;
      }
    }

    /**
     * Joint attention; returns {image output, text output}, unprojected ([B, S_img, dim], [B, S_txt,
     * dim]): the block projects them with {@link #toOut} and {@link #toAddOut} into its gated residuals.
     */
    Tensor[] joint(Tensor x, Tensor ctx, Args a) {
      long textLen = ctx.size(1);
      if (Attention.tokenMajorApplies(a.backend(), x, x.size(1) + textLen)) {
        Tensor[] o = Attention.attendTokenMajor(
            Attention.jointHeads(addQ.forward(ctx), toQ.forward(x), heads, normAddedQ, normQ, 1e-6, a.rope()),
            Attention.jointHeads(addK.forward(ctx), toK.forward(x), heads, normAddedK, normK, 1e-6, a.rope()),
            Attention.jointHeads(addV.forward(ctx), toV.forward(x), heads, null, null, 0, null), textLen);
        return new Tensor[] {o[1], o[0]};
      }
      Tensor o = Attention.merge(a.backend().attendDeferred(
          () -> Attention.jointHeads(addV.forward(ctx), toV.forward(x), heads, null, null, 0, null),
          () -> Attention.jointHeads(addQ.forward(ctx), toQ.forward(x), heads, normAddedQ, normQ, 1e-6, a.rope()),
          () -> Attention.jointHeads(addK.forward(ctx), toK.forward(x), heads, normAddedK, normK, 1e-6, a.rope()),
          null).get()).to(x.scalar_type());
      return new Tensor[] {o.narrow(1, textLen, o.size(1) - textLen), o.narrow(1, 0, textLen)};
    }

    /** {@link #self} on the CPU kernel ({@link Attention#attendTokenMajor}): [B, S, H*D], unprojected. */
    Tensor selfTokenMajor(Tensor x, Args a) {
      return Attention.attendTokenMajor(
          Attention.jointHeads(toQ.forward(x), null, heads, normQ, null, 1e-6, a.rope()),
          Attention.jointHeads(toK.forward(x), null, heads, normK, null, 1e-6, a.rope()),
          Attention.heads(toV.forward(x), heads).contiguous(), x.size(1))[0];
    }

    /**
     * Self-attention over the joint sequence, unprojected (pre_only), possibly still in flight: the
     * single-stream block computes its MLP meanwhile.
     */
    AttentionBackend.Result self(Tensor x, Args a) {
      return a.backend().attendDeferred(
          () -> Attention.heads(toV.forward(x), heads),
          () -> Attention.jointHeads(toQ.forward(x), null, heads, normQ, null, 1e-6, a.rope()),
          () -> Attention.jointHeads(toK.forward(x), null, heads, normK, null, 1e-6, a.rope()),
          null);
    }
  }

  /** Double-stream (MMDiT) block: pattern 1. */
  static final class FluxTransformerBlock {
    private final AdaLayerNorms.Zero norm1;
    private final AdaLayerNorms.Zero norm1Context;
    private final FluxAttention attn;
    private final FeedForward ff;
    private final FeedForward ffContext;

    private final int slot;

    FluxTransformerBlock(WeightScope w, FluxTransformer2DModelConfig c, int slot) {
      long dim = c.innerDim();
      this.slot = slot;
      this.norm1 = new AdaLayerNorms.Zero(w.pp("norm1"), dim);
      this.norm1Context = new AdaLayerNorms.Zero(w.pp("norm1_context"), dim);
      this.attn = new FluxAttention(w.pp("attn"), c, true);
      this.ff = new FeedForward(w.pp("ff"), dim, dim, "gelu-approximate");
      this.ffContext = new FeedForward(w.pp("ff_context"), dim, dim, "gelu-approximate");
    }

    BlockIO forward(Tensor hidden, Tensor encoder, Args a) {
      Tensor[] n = norm1.apply(hidden, a.modulation(slot, norm1::modulation));
      Tensor[] c = norm1Context.apply(encoder, a.modulation(slot + 1, norm1Context::modulation));
      Tensor[] attnOut = attn.joint(n[0], c[0], a);  // unprojected: projected into the gated residuals
      Tensor h = attn.toOut.forwardGated(attnOut[0], hidden, n[1]);
      h = ff.forwardGated(AdaLayerNorms.normModulate(h, n[2], n[3], 1e-6), h, n[4]);
      Tensor e = attn.toAddOut.forwardGated(attnOut[1], encoder, c[1]);
      e = ffContext.forwardGated(AdaLayerNorms.normModulate(e, c[2], c[3], 1e-6), e, c[4]);
      return new BlockIO(h, clipHalf(e));
    }
  }

  /** Single-stream block over [text; image] tokens: pattern 3 (or pattern 1 when fused). */
  static final class FluxSingleTransformerBlock {
    private final AdaLayerNorms.ZeroSingle norm;
    private final Linear projMlp;
    private final Linear projOut;
    private final FluxAttention attn;

    private final int slot;

    FluxSingleTransformerBlock(WeightScope w, FluxTransformer2DModelConfig c, int slot) {
      long dim = c.innerDim();
      this.slot = slot;
      long mlp = 4 * dim;
      this.norm = new AdaLayerNorms.ZeroSingle(w.pp("norm"), dim);
      this.projMlp = new Linear(w.pp("proj_mlp"), dim, mlp);
      this.projOut = new Linear(w.pp("proj_out"), dim + mlp, dim);
      this.attn = new FluxAttention(w.pp("attn"), c, false);
    }

    Tensor forward(Tensor hidden, Args a) {
      Tensor[] n = norm.apply(hidden, a.modulation(slot, norm::modulation));
      Tensor attnOut;
      Tensor mlp;
      if (Attention.tokenMajorApplies(a.backend(), n[0], n[0].size(1))) {
        attnOut = attn.selfTokenMajor(n[0], a);
        mlp = projMlp.forward(n[0], FusedActivation.GELU_TANH);
      } else {
        AttentionBackend.Result attention = attn.self(n[0], a);
        mlp = projMlp.forward(n[0], FusedActivation.GELU_TANH);  // while the attention output travels
        attnOut = Attention.merge(attention.get()).to(hidden.scalar_type());
      }
      return clipHalf(projOut.forwardGated(torch.cat(new TensorVector(attnOut, mlp), 2), hidden, n[1]));
    }

    /** The fused form (cache-dit's FluxPatchFunctor): (image, text) in, concatenated inside, split after. */
    BlockIO forwardPair(Tensor hidden, Tensor encoder, Args a) {
      long textLen = encoder.size(1);
      Tensor joint = forward(torch.cat(new TensorVector(encoder, hidden), 1), a);
      return new BlockIO(joint.narrow(1, textLen, joint.size(1) - textLen), joint.narrow(1, 0, textLen));
    }
  }
}
