package io.cachedit.cache;

/** What a calibrator extrapolates (docs/algorithms.md section 6). */
public enum CalibratorCacheType {
  /** The middle blocks' residual, added to this step's Fn output on cached steps (default). */
  RESIDUAL,
  /** The middle blocks' output itself, which replaces the Fn output on cached steps. */
  HIDDEN_STATES
}
