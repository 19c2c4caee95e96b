package io.cachedit.models.common;

import org.bytedeco.pytorch.Tensor;

/**
 * What flows between blocks: the hidden states (image/video tokens, never null) and the encoder
 * states (text tokens; null where a pattern has none, see {@link ForwardPattern}).
 */
public record BlockIO(Tensor hidden, Tensor encoder) {
  public BlockIO {
    if (hidden == null) {
      throw new IllegalArgumentException("hidden states must not be null");
    }
  }

  public static BlockIO of(Tensor hidden) {
    return new BlockIO(hidden, null);
  }
}
