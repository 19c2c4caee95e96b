package io.cachedit.pipeline;

import io.cachedit.models.common.CfgParallel;
import io.cachedit.models.common.DiffusionPipeline;

/** What a pipeline that can spread its classifier-free-guidance calls over two ranks keeps. */
abstract class CfgSpreadingPipeline implements DiffusionPipeline {
  /** How this pipeline's CFG branches are spread; read once per generation. */
  protected volatile CfgParallel cfgParallel = CfgParallel.NONE;
  /** One generation at a time. */
  protected final GenerationGuard guard = new GenerationGuard();

  @Override
  public final boolean generating() {
    return guard.busy();
  }

  @Override
  public final boolean supportsCfgParallel() {
    return true;
  }

  @Override
  public final CfgParallel cfgParallel() {
    return cfgParallel;
  }

  @Override
  public final void setCfgParallel(CfgParallel cfgParallel) {
    this.cfgParallel = cfgParallel == null ? CfgParallel.NONE : cfgParallel;
  }
}
