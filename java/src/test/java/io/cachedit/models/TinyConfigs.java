package io.cachedit.models;

/** Tiny configs of every model, for tests that must run in seconds on a CPU. */
public final class TinyConfigs {
  private TinyConfigs() {}

  public static String flux(boolean guidance) {
    return """
        {"_class_name": "FluxTransformer2DModel", "patch_size": 1, "in_channels": 8, "num_layers": 2,
         "num_single_layers": 3, "attention_head_dim": 8, "num_attention_heads": 2, "joint_attention_dim": 12,
         "pooled_projection_dim": 6, "guidance_embeds": %s, "axes_dims_rope": [2, 2, 4]}
        """.formatted(guidance);
  }
}
