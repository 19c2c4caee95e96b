package io.cachedit.models.qwentext;

import io.cachedit.io.JsonConfig;
import io.cachedit.io.WeightScope;
import io.cachedit.models.common.AbstractDiffusersModel;
import io.cachedit.models.common.ComponentModel;
import io.cachedit.models.common.ForwardInputs;
import io.cachedit.models.common.Linear;
import io.cachedit.models.common.TextEncoderCalls;
import io.cachedit.models.common.Sdpa;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.ScalarTypeOptional;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptions;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * The Qwen decoder-only language models as text encoders: transformers' {@code Qwen3Model} (Z-Image
 * takes its second-to-last hidden state) and the text model of {@code Qwen2_5_VLForConditionalGeneration}
 * (Qwen-Image takes its last hidden state): pre-norm decoder layers with grouped-query causal attention,
 * rotary positions, a SiLU-gated MLP; Qwen3 adds RMS norms on each head's queries and keys, Qwen2.5
 * biases on the query, key and value projections. Loads {@code Qwen3Model} checkpoints, the language
 * model of {@code Qwen3ForCausalLM} and {@code Qwen2_5_VLForConditionalGeneration} ones (the LM head and
 * the vision tower are not needed; text-only positions make Qwen2.5-VL's multimodal rotary sections
 * one ordinary rotary embedding).
 */
public final class QwenTextModel extends AbstractDiffusersModel implements ComponentModel {
  /** Which Qwen generation: its attention's extras. */
  public enum Variant {
    /** q_norm / k_norm per head, biases as attention_bias says. */
    QWEN3,
    /** biases on q/k/v (not o), no per-head norms. */
    QWEN2
  }

  /** The fields of {@code Qwen3Config} the encoder reads. */
  public record Config(int vocabSize, int hiddenSize, int intermediateSize, int numHiddenLayers, int numAttentionHeads,
      int numKeyValueHeads, int headDim, double rmsNormEps, double ropeTheta, boolean attentionBias) {
    public Config {
      if (numAttentionHeads % numKeyValueHeads != 0) {
        throw new IllegalArgumentException("num_attention_heads " + numAttentionHeads
            + " is not a multiple of num_key_value_heads " + numKeyValueHeads);
      }
      if (headDim % 2 != 0) {
        throw new IllegalArgumentException("head_dim must be even for rotary positions, got " + headDim);
      }
    }

    /** A Qwen2.5-VL config: the text part from {@code text_config} (transformers 5) or the top level. */
    public static Config fromVlJson(JsonConfig c) {
      String text = c.getObjectJson("text_config");
      c.getObjectJson("vision_config");
      return fromJson(text != null ? JsonConfig.parse(text, c.origin() + " text_config") : c);
    }

    public static Config fromJson(JsonConfig c) {
      int hidden = c.getInt("hidden_size", 4096);
      int heads = c.getInt("num_attention_heads", 32);
      Integer headDim = c.getIntOrNull("head_dim");
      double theta = c.getDouble("rope_theta", Double.NaN);
      if (Double.isNaN(theta)) {  // transformers 5 writes rope_parameters {"rope_theta": ..., "rope_type": "default"}
        String rope = c.getObjectJson("rope_parameters");
        theta = 10000.0;
        if (rope != null) {
          try {
            com.fasterxml.jackson.databind.JsonNode n = new com.fasterxml.jackson.databind.ObjectMapper().readTree(rope);
            String type = n.path("rope_type").asText("default");
            if (!type.equals("default") && !type.equals("mrope")) {
              throw io.cachedit.error.ConfigException.forField("rope_parameters", "model config " + c.origin()
                  + ": rope_type \"" + type + "\" is not supported (default rotary positions only)");
            }
            theta = n.path("rope_theta").asDouble(10000.0);
          } catch (java.io.IOException e) {
            throw io.cachedit.error.ConfigException.forField("rope_parameters", "model config " + c.origin()
                + ": rope_parameters is not an object");
          }
        }
      }
      if (c.getBool("use_sliding_window", false)) {
        throw io.cachedit.error.ConfigException.forField("use_sliding_window", "model config " + c.origin()
            + ": sliding-window attention is not supported");
      }
      c.getString("hidden_act", "silu");
      return new Config(c.getInt("vocab_size", 151936), hidden, c.getInt("intermediate_size", 22016),
          c.getInt("num_hidden_layers", 32), heads, c.getInt("num_key_value_heads", heads),
          headDim != null ? headDim : hidden / heads, c.getDouble("rms_norm_eps", 1e-6), theta,
          c.getBool("attention_bias", false));
    }
  }

  private record Layer(Tensor inputNorm, Linear q, Linear k, Linear v, Linear o, Tensor qNorm, Tensor kNorm,
      Tensor postNorm, Linear gate, Linear up, Linear down) {}

  private final Config config;
  private final String configJson;
  private final Tensor embedding;
  private final List<Layer> layers = new ArrayList<>();
  private final Tensor norm;

  private final Variant variant;

  public QwenTextModel(String className, Variant variant, Config config, WeightScope w, String configJson) {
    super(className, w);
    this.variant = variant;
    this.config = config;
    this.configJson = configJson;
    // ForCausalLM / ForConditionalGeneration checkpoints keep the model under model. (transformers 5 saves
    // Qwen2.5-VL's under model.language_model.) and add lm_head (and the vision tower)
    WeightScope m = w;
    if (w.containsPrefix("model.language_model")) {
      m = w.pp("model").pp("language_model");
    } else if (w.containsPrefix("model") && !w.containsPrefix("embed_tokens")) {
      m = w.pp("model");
    }
    w.allowUnused("lm_head.weight");
    w.allowUnusedBelow("visual");
    w.allowUnusedBelow("model.visual");
    int h = config.hiddenSize();
    int q = config.numAttentionHeads() * config.headDim();
    int kv = config.numKeyValueHeads() * config.headDim();
    boolean bias = config.attentionBias();
    boolean qkvBias = variant == Variant.QWEN2 || bias;
    boolean qwen3 = variant == Variant.QWEN3;
    embedding = m.get("embed_tokens.weight", config.vocabSize(), h);
    for (int i = 0; i < config.numHiddenLayers(); i++) {
      WeightScope l = m.pp("layers").pp(i);
      WeightScope a = l.pp("self_attn");
      WeightScope f = l.pp("mlp");
      layers.add(new Layer(l.get("input_layernorm.weight", h), new Linear(a.pp("q_proj"), h, q, qkvBias),
          new Linear(a.pp("k_proj"), h, kv, qkvBias), new Linear(a.pp("v_proj"), h, kv, qkvBias),
          new Linear(a.pp("o_proj"), q, h, qwen3 && bias), qwen3 ? a.get("q_norm.weight", config.headDim()) : null,
          qwen3 ? a.get("k_norm.weight", config.headDim()) : null, l.get("post_attention_layernorm.weight", h),
          new Linear(f.pp("gate_proj"), h, config.intermediateSize(), false),
          new Linear(f.pp("up_proj"), h, config.intermediateSize(), false),
          new Linear(f.pp("down_proj"), config.intermediateSize(), h, false)));
    }
    norm = m.get("norm.weight", h);
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
   * @param lastHiddenState after the final norm, [B, S, hidden]
   * @param hiddenStates the embeddings, each layer's output, the last one normed (transformers' order), when asked
   */
  public record Output(Tensor lastHiddenState, List<Tensor> hiddenStates) {}

  /** Qwen3RMSNorm: fp32 mean square, cast back to the input dtype, then times the weight. */
  private Tensor rmsNorm(Tensor x, Tensor weight) {
    ScalarType in = x.scalar_type().intern();
    Tensor xf = x.to(ScalarType.Float);
    Tensor variance = xf.pow(new Scalar(2.0)).mean(new long[] {-1}, true, new ScalarTypeOptional());
    return weight.mul(xf.mul(torch.rsqrt(variance.add(new Scalar(config.rmsNormEps())))).to(in));
  }

  private static Tensor rotateHalf(Tensor x) {
    long half = x.size(-1) / 2;
    return torch.cat(new TensorVector(x.narrow(-1, half, half).neg(), x.narrow(-1, 0, half)), -1);
  }

  /** Encodes ids [B, S]; {@code attentionMask} [B, S] of 1/0 (null: every token) masks padding keys. */
  public Output encode(Tensor inputIds, Tensor attentionMask, boolean outputHiddenStates) {
    ensureOpen();
    if (inputIds.dim() != 2) {
      throw new IllegalArgumentException("input_ids must be [batch, sequence], got " + inputIds.dim() + " dimensions");
    }
    long b = inputIds.size(0);
    long s = inputIds.size(1);
    Tensor x = torch.embedding(embedding, inputIds.to(ScalarType.Long));
    ScalarType dt = x.scalar_type().intern();
    int d = config.headDim();
    // rotary tables in fp32, then the activations' dtype, as transformers computes them
    Tensor invFreq = torch.arange(new Scalar(0), new Scalar(d), new Scalar(2)).to(ScalarType.Float)
        .div(new Scalar((double) d));
    invFreq = torch.pow(new Scalar(config.ropeTheta()), invFreq).reciprocal();
    Tensor freqs = torch.arange(new Scalar(s)).to(ScalarType.Float).view(s, 1).matmul(invFreq.view(1, -1));
    Tensor emb = torch.cat(new TensorVector(freqs, freqs), -1);
    Tensor cos = emb.cos().to(dt).view(1, 1, s, d);
    Tensor sin = emb.sin().to(dt).view(1, 1, s, d);
    Tensor mask = torch.ones(new long[] {s, s}, new TensorOptions(ScalarType.Bool)).tril().view(1, 1, s, s);
    if (attentionMask != null) {
      mask = mask.logical_and(attentionMask.to(ScalarType.Bool).view(b, 1, 1, s));
    }
    List<Tensor> hidden = outputHiddenStates ? new ArrayList<>() : null;
    int heads = config.numAttentionHeads();
    int kvHeads = config.numKeyValueHeads();
    int groups = heads / kvHeads;
    for (Layer l : layers) {
      if (hidden != null) {
        hidden.add(x);
      }
      Tensor n = rmsNorm(x, l.inputNorm());
      Tensor q = l.q().forward(n).view(b, s, heads, d);
      Tensor k = l.k().forward(n).view(b, s, kvHeads, d);
      if (l.qNorm() != null) {
        q = rmsNorm(q, l.qNorm());
        k = rmsNorm(k, l.kNorm());
      }
      q = q.transpose(1, 2);
      k = k.transpose(1, 2);
      Tensor v = l.v().forward(n).view(b, s, kvHeads, d).transpose(1, 2);
      q = q.mul(cos).add(rotateHalf(q).mul(sin));
      k = k.mul(cos).add(rotateHalf(k).mul(sin));
      if (groups > 1) {
        k = k.unsqueeze(2).expand(b, kvHeads, groups, s, d).reshape(b, heads, s, d);
        v = v.unsqueeze(2).expand(b, kvHeads, groups, s, d).reshape(b, heads, s, d);
      }
      Tensor a = Sdpa.AUTO.attend(q, k, v, mask).transpose(1, 2).reshape(b, s, (long) heads * d);
      x = x.add(l.o().forward(a));
      Tensor m = rmsNorm(x, l.postNorm());
      x = x.add(l.down().forward(torch.silu(l.gate().forward(m)).mul(l.up().forward(m))));
    }
    Tensor last = rmsNorm(x, norm);
    if (hidden != null) {
      hidden.add(last);
    }
    return new Output(last, hidden);
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
