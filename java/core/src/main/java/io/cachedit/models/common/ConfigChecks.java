package io.cachedit.models.common;

/**
 * Relations between config.json values that the families share, checked when a config is built (the
 * single values' ranges are checked as they are read, by {@code JsonConfig}).
 */
public final class ConfigChecks {
  /** Largest attention width (heads x head dim) a config may ask for: past any real model. */
  public static final long MAX_INNER_DIM = 65536;

  private ConfigChecks() {}

  /** num_attention_heads x attention_head_dim at most {@link #MAX_INNER_DIM}. */
  public static void innerDim(int heads, int headDim) {
    if ((long) heads * headDim > MAX_INNER_DIM) {
      throw new IllegalArgumentException("num_attention_heads x attention_head_dim = " + (long) heads * headDim
          + " is past any real model (at most " + MAX_INNER_DIM + ")");
    }
  }

  /** sample_size at least patch_size. */
  public static void sampleCoversPatch(int sampleSize, int patchSize) {
    if (sampleSize < patchSize) {
      throw new IllegalArgumentException("sample_size " + sampleSize + " is smaller than patch_size " + patchSize);
    }
  }
}
