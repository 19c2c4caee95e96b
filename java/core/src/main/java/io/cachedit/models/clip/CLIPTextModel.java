package io.cachedit.models.clip;

import io.cachedit.io.JsonConfig;
import io.cachedit.io.WeightScope;
import io.cachedit.models.common.AbstractDiffusersModel;
import io.cachedit.models.common.ComponentModel;
import io.cachedit.models.common.ForwardInputs;
import io.cachedit.models.common.Linear;
import io.cachedit.models.common.TextEncoderCalls;
import io.cachedit.models.common.Norms;
import io.cachedit.models.common.Sdpa;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptions;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * transformers' {@code CLIPTextModel} and {@code CLIPTextModelWithProjection}: token + position
 * embeddings, pre-norm encoder layers with causal attention, a final layer norm, the pooled state at
 * the end-of-text token, and (with projection) {@code text_projection} of it. FLUX uses the pooled
 * output, SD3 the penultimate hidden state and the projected embeddings. Checkpoint keys as
 * transformers names them, with or without the {@code text_model.} prefix that older checkpoints have.
 */
public final class CLIPTextModel extends AbstractDiffusersModel implements ComponentModel {
  /** The fields of {@code CLIPTextConfig} the text model reads. */
  public record Config(int vocabSize, int hiddenSize, int intermediateSize, int projectionDim, int numHiddenLayers,
      int numAttentionHeads, int maxPositionEmbeddings, String hiddenAct, double layerNormEps, int eosTokenId) {
    public Config {
      if (hiddenSize % numAttentionHeads != 0) {
        throw new IllegalArgumentException("hidden_size " + hiddenSize + " is not a multiple of num_attention_heads "
            + numAttentionHeads);
      }
      if (!hiddenAct.equals("quick_gelu") && !hiddenAct.equals("gelu")) {
        throw new IllegalArgumentException("hidden_act \"" + hiddenAct + "\" is not supported; CLIP text models use "
            + "quick_gelu or gelu");
      }
    }

    public static Config fromJson(JsonConfig c) {
      return new Config(c.getInt("vocab_size", 49408), c.getInt("hidden_size", 512), c.getInt("intermediate_size", 2048),
          c.getInt("projection_dim", 512), c.getInt("num_hidden_layers", 12), c.getInt("num_attention_heads", 8),
          c.getInt("max_position_embeddings", 77), c.getString("hidden_act", "quick_gelu"),
          c.getDouble("layer_norm_eps", 1e-5), c.getInt("eos_token_id", 2));
    }
  }

  /**
   * @param lastHiddenState after the final layer norm, [B, S, hidden]
   * @param pooled the final-normed state at each row's end-of-text token, [B, hidden]
   * @param textEmbeds {@code text_projection(pooled)} (with projection), else null
   * @param hiddenStates embeddings and each layer's output (before the final norm), when asked for
   */
  public record Output(Tensor lastHiddenState, Tensor pooled, Tensor textEmbeds, List<Tensor> hiddenStates) {}

  private record Layer(Tensor ln1w, Tensor ln1b, Linear q, Linear k, Linear v, Linear out, Tensor ln2w, Tensor ln2b,
      Linear fc1, Linear fc2) {}

  private final Config config;
  private final String configJson;
  private final boolean withProjection;
  private final Tensor tokenEmbedding;
  private final Tensor positionEmbedding;
  private final List<Layer> layers = new ArrayList<>();
  private final Tensor finalNormWeight;
  private final Tensor finalNormBias;
  private final Linear textProjection;

  public CLIPTextModel(Config config, WeightScope w, boolean withProjection, String configJson) {
    super(withProjection ? "CLIPTextModelWithProjection" : "CLIPTextModel", w);
    this.config = config;
    this.configJson = configJson;
    this.withProjection = withProjection;
    // CLIPTextModelWithProjection and checkpoints before transformers 5 keep the text model under text_model.
    WeightScope t = withProjection || w.containsPrefix("text_model") || !w.containsPrefix("embeddings")
        ? w.pp("text_model") : w;
    int h = config.hiddenSize();
    tokenEmbedding = t.get("embeddings.token_embedding.weight", config.vocabSize(), h);
    positionEmbedding = t.get("embeddings.position_embedding.weight", config.maxPositionEmbeddings(), h);
    t.allowUnused("embeddings.position_ids");  // a buffer older checkpoints saved
    for (int i = 0; i < config.numHiddenLayers(); i++) {
      WeightScope l = t.pp("encoder").pp("layers").pp(i);
      WeightScope a = l.pp("self_attn");
      layers.add(new Layer(l.get("layer_norm1.weight", h), l.get("layer_norm1.bias", h),
          new Linear(a.pp("q_proj"), h, h), new Linear(a.pp("k_proj"), h, h), new Linear(a.pp("v_proj"), h, h),
          new Linear(a.pp("out_proj"), h, h), l.get("layer_norm2.weight", h), l.get("layer_norm2.bias", h),
          new Linear(l.pp("mlp").pp("fc1"), h, config.intermediateSize()),
          new Linear(l.pp("mlp").pp("fc2"), config.intermediateSize(), h)));
    }
    finalNormWeight = t.get("final_layer_norm.weight", h);
    finalNormBias = t.get("final_layer_norm.bias", h);
    textProjection = withProjection ? new Linear(w.pp("text_projection"), h, config.projectionDim(), false) : null;
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
   * Encodes token ids [B, S] (S at most max_position_embeddings); {@code attentionMask} [B, S] of 1/0
   * (null: every token) masks padding keys on top of the causal mask.
   */
  public Output encode(Tensor inputIds, Tensor attentionMask, boolean outputHiddenStates) {
    ensureOpen();
    if (inputIds.dim() != 2) {
      throw new IllegalArgumentException("input_ids must be [batch, sequence], got " + inputIds.dim() + " dimensions");
    }
    long s = inputIds.size(1);
    if (s > config.maxPositionEmbeddings()) {
      throw new IllegalArgumentException("input_ids has " + s + " tokens; " + className() + " takes at most "
          + config.maxPositionEmbeddings() + " (max_position_embeddings): truncate with the tokenizer");
    }
    Tensor ids = inputIds.to(ScalarType.Long);
    Tensor x = torch.embedding(tokenEmbedding, ids).add(positionEmbedding.narrow(0, 0, s).unsqueeze(0));
    Tensor mask = torch.ones(new long[] {s, s}, new TensorOptions(ScalarType.Bool)).tril();
    mask = attentionMask == null ? mask.view(1, 1, s, s)
        : mask.view(1, 1, s, s).logical_and(attentionMask.to(ScalarType.Bool).view(-1, 1, 1, s));
    List<Tensor> hidden = outputHiddenStates ? new ArrayList<>() : null;
    int heads = config.numAttentionHeads();
    long headDim = config.hiddenSize() / heads;
    long b = x.size(0);
    for (Layer l : layers) {
      if (hidden != null) {
        hidden.add(x);
      }
      Tensor n = Norms.layerNorm(x, l.ln1w(), l.ln1b(), config.layerNormEps());
      Tensor q = l.q().forward(n).view(b, s, heads, headDim).transpose(1, 2);
      Tensor k = l.k().forward(n).view(b, s, heads, headDim).transpose(1, 2);
      Tensor v = l.v().forward(n).view(b, s, heads, headDim).transpose(1, 2);
      Tensor a = Sdpa.AUTO.attend(q, k, v, mask).transpose(1, 2).reshape(b, s, config.hiddenSize());
      x = x.add(l.out().forward(a));
      Tensor m = l.fc1().forward(Norms.layerNorm(x, l.ln2w(), l.ln2b(), config.layerNormEps()));
      m = config.hiddenAct().equals("quick_gelu") ? m.mul(torch.sigmoid(m.mul(new Scalar(1.702)))) : torch.gelu(m);
      x = x.add(l.fc2().forward(m));
    }
    if (hidden != null) {
      hidden.add(x);
    }
    Tensor last = Norms.layerNorm(x, finalNormWeight, finalNormBias, config.layerNormEps());
    // transformers: the highest id (the end-of-text token of the original vocabulary) when eos_token_id is the
    // legacy 2, else the first eos_token_id of each row
    Tensor eosAt = config.eosTokenId() == 2 ? ids.to(ScalarType.Int).argmax(new org.bytedeco.pytorch.LongOptional(-1), false)
        : ids.eq(new Scalar((long) config.eosTokenId())).to(ScalarType.Int)
            .argmax(new org.bytedeco.pytorch.LongOptional(-1), false);
    Tensor pooled = gatherRows(last, eosAt);
    Tensor embeds = textProjection == null ? null : textProjection.forward(pooled);
    return new Output(last, pooled, embeds, hidden);
  }

  private static Tensor gatherRows(Tensor states, Tensor positions) {
    long b = states.size(0);
    long h = states.size(2);
    Tensor index = positions.to(ScalarType.Long).view(b, 1, 1).expand(b, 1, h);
    return states.gather(1, index).view(b, h);
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
    if (withProjection) {
      out.put("text_embeds", o.textEmbeds());
    }
    out.put("last_hidden_state", o.lastHiddenState());
    if (!withProjection) {
      out.put("pooler_output", o.pooled());
    }
    TextEncoderCalls.putHiddenStates(out, o.hiddenStates());
    return out;
  }
}
