package io.cachedit.models.common;

import org.bytedeco.pytorch.Tensor;

/** The head reshapes every attention of the models shares. */
public final class Attention {
  private Attention() {}

  /** [B, S, H*D] -> [B, H, S, D]. */
  public static Tensor heads(Tensor x, long heads) {
    long b = x.size(0);
    long s = x.size(1);
    return x.view(b, s, heads, x.size(2) / heads).transpose(1, 2);
  }

  /** [B, H, S, D] -> [B, S, H*D]. */
  public static Tensor merge(Tensor x) {
    long b = x.size(0);
    long s = x.size(2);
    return x.transpose(1, 2).reshape(b, s, x.size(1) * x.size(3));
  }
}
