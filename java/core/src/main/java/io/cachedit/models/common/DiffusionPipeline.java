package io.cachedit.models.common;

import java.util.List;

/**
 * A pipeline that owns one or more transformers (Wan 2.2 MoE has two) and calls them with a
 * {@link StepContext} per call; a new {@link StepContext#generation()} starts fresh caches.
 */
public interface DiffusionPipeline {
  List<? extends Transformer> transformers();

  /**
   * Whether a generation is running on this pipeline now. Pipelines run one generation at a time and
   * refuse a second thread; caching cannot be enabled on a pipeline while it generates.
   */
  default boolean generating() {
    return false;
  }

  /** Whether this pipeline makes classifier-free-guidance calls that {@link #setCfgParallel} can spread. */
  default boolean supportsCfgParallel() {
    return false;
  }

  /** How the CFG branches are spread over ranks ({@link CfgParallel#NONE}: both here). */
  default CfgParallel cfgParallel() {
    return CfgParallel.NONE;
  }

  /** Spreads the CFG branches over ranks (null: both here again). */
  default void setCfgParallel(CfgParallel cfgParallel) {
    throw new UnsupportedOperationException(getClass().getSimpleName() + " has no classifier-free guidance "
        + "calls to spread over ranks");
  }
}
