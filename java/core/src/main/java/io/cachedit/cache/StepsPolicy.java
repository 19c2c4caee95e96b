package io.cachedit.cache;

/** How a 0 in a {@link StepMask} is treated (docs/algorithms.md section 7). */
public enum StepsPolicy {
  /** A 0-step goes through the normal cache gates (threshold, limits). The recommended policy. */
  DYNAMIC,
  /** A 0-step is cached unconditionally (once a cached residual exists). */
  STATIC
}
