package io.cachedit.models;

/** Tiny configs of every model, for tests that must run in seconds on a CPU. */
public final class TinyConfigs {
  private TinyConfigs() {}

  public static String wan(boolean i2v) {
    return """
        {"_class_name": "WanTransformer3DModel", "patch_size": [1, 2, 2], "num_attention_heads": 2,
         "attention_head_dim": 12, "in_channels": 4, "out_channels": 4, "text_dim": 10, "freq_dim": 16,
         "ffn_dim": 24, "num_layers": 3, "cross_attn_norm": true, "qk_norm": "rms_norm_across_heads",
         "eps": 1e-6, "image_dim": %s, "added_kv_proj_dim": %s, "rope_max_seq_len": 32}
        """.formatted(i2v ? "8" : "null", i2v ? "24" : "null");
  }

  public static String qwenImage() {
    return """
        {"_class_name": "QwenImageTransformer2DModel", "patch_size": 2, "in_channels": 16, "out_channels": 4,
         "num_layers": 3, "attention_head_dim": 8, "num_attention_heads": 2, "joint_attention_dim": 12,
         "guidance_embeds": false, "axes_dims_rope": [2, 2, 4]}
        """;
  }

  public static String sd3(boolean sd35) {
    return """
        {"_class_name": "SD3Transformer2DModel", "sample_size": 16, "patch_size": 2, "in_channels": 4,
         "num_layers": 3, "attention_head_dim": 8, "num_attention_heads": 2, "joint_attention_dim": 12,
         "caption_projection_dim": 16, "pooled_projection_dim": 6, "out_channels": 4, "pos_embed_max_size": 8,
         "dual_attention_layers": %s, "qk_norm": %s}
        """.formatted(sd35 ? "[0, 1]" : "[]", sd35 ? "\"rms_norm\"" : "null");
  }

  public static String flux(boolean guidance) {
    return """
        {"_class_name": "FluxTransformer2DModel", "patch_size": 1, "in_channels": 8, "num_layers": 2,
         "num_single_layers": 3, "attention_head_dim": 8, "num_attention_heads": 2, "joint_attention_dim": 12,
         "pooled_projection_dim": 6, "guidance_embeds": %s, "axes_dims_rope": [2, 2, 4]}
        """.formatted(guidance);
  }

  public static String zImage() {
    return """
        {"_class_name": "ZImageTransformer2DModel", "all_patch_size": [2], "all_f_patch_size": [1], "in_channels": 4,
         "dim": 24, "n_layers": 3, "n_refiner_layers": 2, "n_heads": 2, "n_kv_heads": 2, "norm_eps": 1e-5,
         "qk_norm": true, "cap_feat_dim": 10, "rope_theta": 256.0, "t_scale": 1000.0, "axes_dims": [4, 4, 4],
         "axes_lens": [128, 32, 32]}
        """;
  }

  public static String dit() {
    return """
        {"_class_name": "DiTTransformer2DModel", "num_attention_heads": 2, "attention_head_dim": 8, "in_channels": 4,
         "out_channels": 8, "num_layers": 3, "sample_size": 8, "patch_size": 2, "num_embeds_ada_norm": 10}
        """;
  }

  public static String pixart(boolean additionalConditions) {
    return """
        {"_class_name": "PixArtTransformer2DModel", "num_attention_heads": 2, "attention_head_dim": 12,
         "in_channels": 4, "out_channels": 8, "num_layers": 3, "cross_attention_dim": 24, "sample_size": 8,
         "patch_size": 2, "caption_channels": 10, "use_additional_conditions": %s}
        """.formatted(additionalConditions);
  }
}
