package io.cachedit.models.t5;

import io.cachedit.io.JsonConfig;
import io.cachedit.io.WeightScope;
import io.cachedit.models.common.AbstractDiffusersModel;
import io.cachedit.models.common.ComponentModel;
import io.cachedit.models.common.ForwardInputs;
import io.cachedit.models.common.Linear;
import io.cachedit.models.common.TextEncoderCalls;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.ScalarTypeOptional;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptions;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * transformers' {@code T5EncoderModel} (FLUX's and SD3's T5-XXL) and {@code UMT5EncoderModel} (Wan's):
 * RMS-style layer norms without mean or bias, unscaled attention with learned relative position
 * buckets (T5: one table in the first block shared by all; UMT5: one per block), a ReLU or gated-GELU
 * feed-forward. Checkpoint keys as transformers names them ({@code shared.weight},
 * {@code encoder.block.N.layer.0.SelfAttention.q.weight}, ...).
 */
public final class T5EncoderModel extends AbstractDiffusersModel implements ComponentModel {
  /** The fields of {@code T5Config} / {@code UMT5Config} the encoder reads. */
  public record Config(int vocabSize, int dModel, int dKv, int dFf, int numLayers, int numHeads, int numBuckets,
      int maxDistance, double layerNormEpsilon, String denseActFn, boolean gated) {
    public Config {
      if (!denseActFn.equals("relu") && !denseActFn.equals("gelu_new") && !denseActFn.equals("gelu")
          && !denseActFn.equals("gelu_pytorch_tanh")) {
        throw new IllegalArgumentException("feed-forward activation \"" + denseActFn + "\" is not supported; T5 models "
            + "use relu or gated-gelu (gelu_new)");
      }
      if (numBuckets < 2) {
        throw new IllegalArgumentException("relative_attention_num_buckets must be >= 2, got " + numBuckets);
      }
    }

    /** {@code feed_forward_proj} "relu" or "gated-gelu" ("gated-" + act in general), as T5Config parses it. */
    public static Config fromJson(JsonConfig c) {
      String ff = c.getString("feed_forward_proj", "relu");
      String[] parts = ff.split("-");
      boolean gated = parts.length > 1 && parts[0].equals("gated");
      if (parts.length > 2 || (parts.length == 2 && !gated)) {
        throw io.cachedit.error.ConfigException.forField("feed_forward_proj", "model config " + c.origin()
            + ": feed_forward_proj \"" + ff + "\" must be an activation or gated-{activation}");
      }
      String act = parts[parts.length - 1].equals("gelu") ? "gelu_new" : parts[parts.length - 1];
      c.getString("dense_act_fn", act);  // written by transformers; derived from feed_forward_proj as it does
      c.getBool("is_gated_act", gated);
      return new Config(c.getInt("vocab_size", 32128), c.getInt("d_model", 512), c.getInt("d_kv", 64),
          c.getInt("d_ff", 2048), c.getInt("num_layers", 6), c.getInt("num_heads", 8),
          c.getInt("relative_attention_num_buckets", 32), c.getInt("relative_attention_max_distance", 128),
          c.getDouble("layer_norm_epsilon", 1e-6), act, gated);
    }
  }

  private record Block(Tensor attnNorm, Linear q, Linear k, Linear v, Linear o, Tensor positionBias, Tensor ffNorm,
      Linear wi0, Linear wi1, Linear wo) {}

  private final Config config;
  private final String configJson;
  private final boolean perLayerBias;
  private final Tensor embedding;
  private final List<Block> blocks = new ArrayList<>();
  private final Tensor finalNorm;

  /** {@code umt5}: every block has its own relative position table. */
  public T5EncoderModel(Config config, WeightScope w, boolean umt5, String configJson) {
    super(umt5 ? "UMT5EncoderModel" : "T5EncoderModel", w);
    this.config = config;
    this.configJson = configJson;
    this.perLayerBias = umt5;
    int d = config.dModel();
    int inner = config.numHeads() * config.dKv();
    // tied embeddings: checkpoints hold shared.weight, encoder.embed_tokens.weight or both
    if (w.contains("shared.weight")) {
      embedding = w.get("shared.weight", config.vocabSize(), d);
      w.allowUnused("encoder.embed_tokens.weight");
    } else {
      embedding = w.get("encoder.embed_tokens.weight", config.vocabSize(), d);
    }
    for (int i = 0; i < config.numLayers(); i++) {
      WeightScope b = w.pp("encoder").pp("block").pp(i);
      WeightScope a = b.pp("layer").pp(0).pp("SelfAttention");
      WeightScope f = b.pp("layer").pp(1).pp("DenseReluDense");
      Tensor bias = umt5 || i == 0 ? a.get("relative_attention_bias.weight", config.numBuckets(), config.numHeads())
          : null;
      blocks.add(new Block(b.pp("layer").pp(0).get("layer_norm.weight", d), new Linear(a.pp("q"), d, inner, false),
          new Linear(a.pp("k"), d, inner, false), new Linear(a.pp("v"), d, inner, false),
          new Linear(a.pp("o"), inner, d, false), bias, b.pp("layer").pp(1).get("layer_norm.weight", d),
          new Linear(f.pp(config.gated() ? "wi_0" : "wi"), d, config.dFf(), false),
          config.gated() ? new Linear(f.pp("wi_1"), d, config.dFf(), false) : null,
          // transformers keeps wo in fp32 when loading fp16 (_keep_in_fp32_modules), not bf16
          new Linear(w.dtype() == ScalarType.Half ? f.pp("wo").fp32() : f.pp("wo"), config.dFf(), d, false)));
    }
    finalNorm = w.get("encoder.final_layer_norm.weight", d);
    finishLoading(w);
  }

  public Config config() {
    return config;
  }

  @Override
  public String configJson() {
    return configJson;
  }

  /**
   * @param lastHiddenState after the final norm, [B, S, d_model]
   * @param hiddenStates each block's input, then the final output, when asked for (transformers' order)
   */
  public record Output(Tensor lastHiddenState, List<Tensor> hiddenStates) {}

  /** Encodes ids [B, S]; {@code attentionMask} [B, S] of 1/0 or null (FLUX and SD3 pass none). */
  public Output encode(Tensor inputIds, Tensor attentionMask, boolean outputHiddenStates) {
    ensureOpen();
    if (inputIds.dim() != 2) {
      throw new IllegalArgumentException("input_ids must be [batch, sequence], got " + inputIds.dim() + " dimensions");
    }
    long b = inputIds.size(0);
    long s = inputIds.size(1);
    Tensor x = torch.embedding(embedding, inputIds.to(ScalarType.Long));
    Tensor mask = null;
    if (attentionMask != null) {  // additive: the dtype's lowest value on padding keys, as transformers builds it
      double min = x.scalar_type().intern() == ScalarType.Float ? -Float.MAX_VALUE
          : x.scalar_type().intern() == ScalarType.BFloat16 ? -3.3895313892515355e38 : -65504.0;
      mask = torch.ones(new long[] {1}).sub(attentionMask.to(ScalarType.Float)).mul(new Scalar(min))
          .view(b, 1, 1, s).to(x.scalar_type());
    }
    List<Tensor> hidden = outputHiddenStates ? new ArrayList<>() : null;
    Tensor sharedBias = null;
    int heads = config.numHeads();
    for (Block blk : blocks) {
      if (hidden != null) {
        hidden.add(x);
      }
      Tensor bias = blk.positionBias() != null ? positionBias(blk.positionBias(), s) : sharedBias;  // in the table's dtype
      if (!perLayerBias) {
        sharedBias = bias;
      }
      Tensor n = rmsNorm(x, blk.attnNorm());
      Tensor q = blk.q().forward(n).view(b, s, heads, config.dKv()).transpose(1, 2);
      Tensor k = blk.k().forward(n).view(b, s, heads, config.dKv()).transpose(1, 2);
      Tensor v = blk.v().forward(n).view(b, s, heads, config.dKv()).transpose(1, 2);
      Tensor scores = q.matmul(k.transpose(2, 3)).add(bias);
      if (mask != null) {
        scores = scores.add(mask);
      }
      Tensor a = scores.softmax(-1, new ScalarTypeOptional()).matmul(v).transpose(1, 2).reshape(b, s, -1);
      x = x.add(blk.o().forward(a));
      Tensor m = rmsNorm(x, blk.ffNorm());
      Tensor h = activation(blk.wi0().forward(m));
      if (blk.wi1() != null) {
        h = h.mul(blk.wi1().forward(m));
      }
      if (h.scalar_type().intern() != blk.wo().dtype()) {
        h = h.to(blk.wo().dtype());
      }
      x = x.add(blk.wo().forward(h));
    }
    Tensor last = rmsNorm(x, finalNorm);
    if (hidden != null) {
      hidden.add(last);
    }
    return new Output(last, hidden);
  }

  /** T5LayerNorm: mean square in fp32, scale, cast to a half weight's dtype, times the weight. */
  private Tensor rmsNorm(Tensor x, Tensor weight) {
    Tensor variance = x.to(ScalarType.Float).pow(new Scalar(2.0)).mean(new long[] {-1}, true, new ScalarTypeOptional());
    Tensor h = x.mul(torch.rsqrt(variance.add(new Scalar(config.layerNormEpsilon()))));
    ScalarType wt = weight.scalar_type().intern();
    if (wt == ScalarType.Half || wt == ScalarType.BFloat16) {
      h = h.to(wt);
    }
    return weight.mul(h);
  }

  private Tensor activation(Tensor x) {
    return switch (config.denseActFn()) {
      case "relu" -> torch.relu(x);
      case "gelu" -> torch.gelu(x);
      case "gelu_pytorch_tanh" -> torch.gelu(x, "tanh");
      // NewGELUActivation, written out as transformers computes it
      default -> x.mul(new Scalar(0.5)).mul(torch.tanh(x.add(x.pow(new Scalar(3.0)).mul(new Scalar(0.044715)))
          .mul(new Scalar(Math.sqrt(2.0 / Math.PI)))).add(new Scalar(1.0)));
    };
  }

  /** The bias [1, heads, S, S] from the bucketed relative positions (bidirectional, as the encoder uses). */
  private Tensor positionBias(Tensor table, long s) {
    Tensor context = torch.arange(new Scalar(s)).to(ScalarType.Long).view(s, 1);
    Tensor memory = torch.arange(new Scalar(s)).to(ScalarType.Long).view(1, s);
    Tensor relative = memory.sub(context);
    long numBuckets = config.numBuckets() / 2;
    Tensor buckets = relative.gt(new Scalar(0L)).to(ScalarType.Long).mul(new Scalar(numBuckets));
    relative = relative.abs();
    long maxExact = numBuckets / 2;
    Tensor isSmall = relative.lt(new Scalar(maxExact));
    Tensor large = torch.log(relative.to(ScalarType.Float).div(new Scalar((double) maxExact)))
        .div(new Scalar(Math.log(config.maxDistance() / (double) maxExact)))
        .mul(new Scalar((double) (numBuckets - maxExact))).to(ScalarType.Long).add(new Scalar(maxExact));
    large = torch.minimum(large, torch.full_like(large, new Scalar(numBuckets - 1)));
    buckets = buckets.add(torch.where(isSmall, relative, large));
    return torch.embedding(table, buckets).permute(2, 0, 1).unsqueeze(0);
  }

  @Override
  public List<String> calls() {
    return List.of("forward");
  }

  @Override
  public Map<String, Tensor> call(String method, ForwardInputs inputs) {
    boolean hiddenStates = TextEncoderCalls.begin(className(), method, inputs);
    Output o = encode(inputs.tensor("input_ids"), inputs.optional("attention_mask"), hiddenStates);
    inputs.checkAllUsed(className());
    Map<String, Tensor> out = new LinkedHashMap<>();
    out.put("last_hidden_state", o.lastHiddenState());
    TextEncoderCalls.putHiddenStates(out, o.hiddenStates());
    return out;
  }
}
