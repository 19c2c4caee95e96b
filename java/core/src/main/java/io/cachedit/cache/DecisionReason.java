package io.cachedit.cache;

/** Why a call (DBCache) or a block (DBPrune) was computed or served from the cache. */
public enum DecisionReason {
  /** A warm-up step: always computed. */
  WARMUP(false, "warm-up step"),
  /** The steps computation mask has a 1 here. */
  MASK_COMPUTE(false, "mask says compute"),
  /** A 0 of a static mask: cached without a diff test. */
  MASK_STATIC_CACHE(true, "static mask 0"),
  /** A 0 of a static mask, but nothing is cached yet: computed (our decision). */
  MASK_STATIC_NOTHING_CACHED(false, "static mask 0, nothing cached yet"),
  /** The branch reached {@code max_cached_steps}. */
  MAX_CACHED_STEPS(false, "max_cached_steps reached"),
  /** Caching would make the run of consecutive cached steps longer than {@code max_continuous_cached_steps}. */
  MAX_CONTINUOUS_CACHED_STEPS(false, "max_continuous_cached_steps reached"),
  /** The branch's recorded diffs add up to {@code max_accumulated_residual_diff_threshold}. */
  MAX_ACCUMULATED_DIFF(false, "max_accumulated_residual_diff_threshold reached"),
  /** The threshold is 0: never cached. */
  THRESHOLD_ZERO(false, "threshold 0"),
  /** No earlier computed step to compare with (or nothing cached to reuse). */
  NO_REFERENCE(false, "no computed step to compare with"),
  /** The probe's shape or dtype changed since the reference step (diff recorded as -2). */
  SHAPE_CHANGED(false, "probe shape changed"),
  /** A threshold of 1 or more caches every eligible call without a diff (diff recorded as -1). */
  THRESHOLD_AT_LEAST_ONE(true, "threshold >= 1"),
  /** The diff is below the threshold. */
  DIFF_BELOW_THRESHOLD(true, "diff < threshold"),
  /** The diff is at or above the threshold. */
  DIFF_AT_OR_ABOVE_THRESHOLD(false, "diff >= threshold"),
  /** DBPrune: a block that is never pruned (first Fn, last Bn, non_prune_block_ids). */
  NOT_PRUNABLE(false, "block is never pruned"),
  /** A call outside the cached branches (e.g. SD3's skip-layer guidance pass): every block runs. */
  BYPASS(false, "bypass call");

  private final boolean cached;
  private final String description;

  DecisionReason(boolean cached, String description) {
    this.cached = cached;
    this.description = description;
  }

  /** Whether this reason means the call (or block) was served from the cache. */
  public boolean cached() {
    return cached;
  }

  public String description() {
    return description;
  }
}
