package io.cachedit.models.common;

import io.cachedit.io.WeightScope;

/** An {@link AbstractDiffusersModel} with block lists and its own {@link AttentionBackend}. */
public abstract class AbstractDiffusersTransformer extends AbstractDiffusersModel implements DiffusersTransformer {
  private volatile AttentionBackend attention = Sdpa.AUTO;
  private volatile SequenceParallel sequenceParallel = SequenceParallel.NONE;

  private final TensorParallel tensorParallel;

  protected AbstractDiffusersTransformer(String className, WeightScope w) {
    super(className, w);
    this.tensorParallel = TensorParallel.of(w);
  }

  @Override
  public final TensorParallel tensorParallel() {
    return tensorParallel;
  }

  @Override
  public final AttentionBackend attention() {
    return attention;
  }

  @Override
  public final void setAttention(AttentionBackend attention) {
    this.attention = attention == null ? Sdpa.AUTO : attention;
  }

  @Override
  public final SequenceParallel sequenceParallel() {
    return sequenceParallel;
  }

  @Override
  public final void setSequenceParallel(SequenceParallel sequenceParallel) {
    this.sequenceParallel = sequenceParallel == null ? SequenceParallel.NONE : sequenceParallel;
  }
}
