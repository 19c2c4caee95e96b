package io.cachedit.models.flux;

import io.cachedit.io.JsonConfig;
import java.util.Arrays;

/**
 * {@code FluxTransformer2DModel}'s config.json, one component per diffusers key.
 *
 * @param patchSize patch_size
 * @param inChannels in_channels (64 for FLUX.1: 16 latent channels x 2x2 packing)
 * @param outChannels out_channels (defaults to in_channels)
 * @param numLayers num_layers: double-stream blocks
 * @param numSingleLayers num_single_layers: single-stream blocks
 * @param attentionHeadDim attention_head_dim
 * @param numAttentionHeads num_attention_heads
 * @param jointAttentionDim joint_attention_dim: width of the text embeddings
 * @param pooledProjectionDim pooled_projection_dim
 * @param guidanceEmbeds guidance_embeds: guidance-distilled (FLUX.1-dev)
 * @param axesDimsRope axes_dims_rope: rotary dims of the (text, row, column) id axes
 */
public record FluxTransformer2DModelConfig(int patchSize, int inChannels, int outChannels, int numLayers,
    int numSingleLayers, int attentionHeadDim, int numAttentionHeads, int jointAttentionDim, int pooledProjectionDim,
    boolean guidanceEmbeds, int[] axesDimsRope) {
  public FluxTransformer2DModelConfig {
    if (numAttentionHeads < 1 || attentionHeadDim < 2 || attentionHeadDim % 2 != 0) {
      throw new IllegalArgumentException("attention_head_dim must be even and num_attention_heads >= 1");
    }
    if (axesDimsRope.length != 3 || Arrays.stream(axesDimsRope).anyMatch(d -> d < 0 || d % 2 != 0)) {
      throw new IllegalArgumentException("axes_dims_rope " + Arrays.toString(axesDimsRope) + " must be three even "
          + "sizes, one per position id axis (text, row, column)");
    }
    io.cachedit.models.common.ConfigChecks.innerDim(numAttentionHeads, attentionHeadDim);
    if (Arrays.stream(axesDimsRope).sum() != attentionHeadDim) {
      throw new IllegalArgumentException("axes_dims_rope " + Arrays.toString(axesDimsRope)
          + " must sum to attention_head_dim " + attentionHeadDim);
    }
    if (numLayers < 0 || numSingleLayers < 0 || inChannels < 1 || outChannels < 1 || patchSize < 1) {
      throw new IllegalArgumentException("num_layers, num_single_layers must be >= 0 and in_channels, out_channels,"
          + " patch_size >= 1");
    }
  }

  public int innerDim() {
    return numAttentionHeads * attentionHeadDim;
  }

  /** FLUX.1-dev (guidance-distilled). */
  public static FluxTransformer2DModelConfig flux1Dev() {
    return new FluxTransformer2DModelConfig(1, 64, 64, 19, 38, 128, 24, 4096, 768, true, new int[] {16, 56, 56});
  }

  /** FLUX.1-schnell (no guidance embedding). */
  public static FluxTransformer2DModelConfig flux1Schnell() {
    return new FluxTransformer2DModelConfig(1, 64, 64, 19, 38, 128, 24, 4096, 768, false, new int[] {16, 56, 56});
  }

  public static FluxTransformer2DModelConfig fromJson(JsonConfig c) {
    int in = c.getInt("in_channels", 64);
    Integer out = c.getIntOrNull("out_channels");
    FluxTransformer2DModelConfig cfg = new FluxTransformer2DModelConfig(c.getInt("patch_size", 1), in,
        out == null ? in : out, c.getInt("num_layers", 19), c.getInt("num_single_layers", 38),
        c.getInt("attention_head_dim", 128), c.getInt("num_attention_heads", 24),
        c.getInt("joint_attention_dim", 4096), c.getInt("pooled_projection_dim", 768),
        c.getBool("guidance_embeds", false), c.getIntArray("axes_dims_rope", new int[] {16, 56, 56}));
    c.warnUnused("FluxTransformer2DModel");
    return cfg;
  }

  /** The config.json text of this config. */
  public String toJson() {
    return "{\n  \"_class_name\": \"FluxTransformer2DModel\",\n  \"patch_size\": " + patchSize + ",\n  \"in_channels\": "
        + inChannels + ",\n  \"out_channels\": " + outChannels + ",\n  \"num_layers\": " + numLayers
        + ",\n  \"num_single_layers\": " + numSingleLayers + ",\n  \"attention_head_dim\": " + attentionHeadDim
        + ",\n  \"num_attention_heads\": " + numAttentionHeads + ",\n  \"joint_attention_dim\": " + jointAttentionDim
        + ",\n  \"pooled_projection_dim\": " + pooledProjectionDim + ",\n  \"guidance_embeds\": " + guidanceEmbeds
        + ",\n  \"axes_dims_rope\": " + Arrays.toString(axesDimsRope) + "\n}\n";
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof FluxTransformer2DModelConfig c && c.toJson().equals(toJson());
  }

  @Override
  public int hashCode() {
    return toJson().hashCode();
  }
}
