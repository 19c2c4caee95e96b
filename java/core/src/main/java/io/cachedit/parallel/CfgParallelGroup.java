package io.cachedit.parallel;

import io.cachedit.models.common.CfgParallel;
import org.bytedeco.pytorch.Tensor;

/** A pipeline's {@link CfgParallel} over the two ranks of a CFG group of the {@link ParallelMesh}. */
final class CfgParallelGroup implements CfgParallel {
  private final CommGroup group;

  CfgParallelGroup(CommGroup group) {
    this.group = group;
  }

  @Override
  public int size() {
    return group.size();
  }

  @Override
  public int index() {
    return group.rank();
  }

  @Override
  public Tensor gather(Tensor mine) {
    return group.allGather(mine).flatten(0, 1);  // [2, B, ...] -> [2B, ...]
  }

  CommGroup group() {
    return group;
  }

  @Override
  public String toString() {
    return "CfgParallel[" + group + "]";
  }
}
