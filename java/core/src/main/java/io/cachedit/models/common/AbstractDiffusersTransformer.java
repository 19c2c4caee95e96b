package io.cachedit.models.common;

import io.cachedit.io.WeightScope;

/** An {@link AbstractDiffusersModel} with block lists and its own {@link AttentionBackend}. */
public abstract class AbstractDiffusersTransformer extends AbstractDiffusersModel implements DiffusersTransformer {
  private volatile AttentionBackend attention = Sdpa.AUTO;

  protected AbstractDiffusersTransformer(String className, WeightScope w) {
    super(className, w);
  }

  @Override
  public final AttentionBackend attention() {
    return attention;
  }

  @Override
  public final void setAttention(AttentionBackend attention) {
    this.attention = attention == null ? Sdpa.AUTO : attention;
  }
}
