package io.cachedit.cache;

import java.util.Optional;
import java.util.OptionalDouble;
import java.util.OptionalInt;

/**
 * Dual Block Cache settings (docs/algorithms.md section 3): compute the first {@code Fn} blocks,
 * compare their output residual with the last computed step's, and if the relative L1 difference is
 * below the threshold reuse the middle blocks' cached residual, then compute the last {@code Bn}
 * blocks. Immutable; build it with {@link #builder()}:
 *
 * <pre>{@code
 * DBCacheConfig config = DBCacheConfig.builder().fnComputeBlocks(1).residualDiffThreshold(0.12)
 *     .maxContinuousCachedSteps(3).build();   // DBCache_F1B0_W8I1M0MC3_R0.12
 * }</pre>
 *
 * The components are documented on {@link BasicCacheConfig}.
 */
public record DBCacheConfig(int fnComputeBlocks, int bnComputeBlocks, double residualDiffThreshold,
    OptionalDouble maxAccumulatedResidualDiffThreshold, int maxWarmupSteps, int warmupInterval,
    OptionalInt maxCachedSteps, OptionalInt maxContinuousCachedSteps, Optional<Boolean> enableSeparateCfg,
    boolean cfgComputeFirst, boolean cfgDiffComputeSeparate, OptionalInt numInferenceSteps,
    Optional<StepMask> stepsComputationMask, StepsPolicy stepsComputationPolicy, OptionalInt forceRefreshStepHint,
    RefreshPolicy forceRefreshStepPolicy, Optional<BufferPrecision> cacheBufferPrecision)
    implements BasicCacheConfig {

  public DBCacheConfig {
    CommonSettings c = CommonSettings.check(fnComputeBlocks, bnComputeBlocks, residualDiffThreshold,
        maxAccumulatedResidualDiffThreshold, maxWarmupSteps, warmupInterval, maxCachedSteps, maxContinuousCachedSteps,
        enableSeparateCfg, cfgComputeFirst, cfgDiffComputeSeparate, numInferenceSteps, stepsComputationMask,
        stepsComputationPolicy, forceRefreshStepHint, forceRefreshStepPolicy, cacheBufferPrecision);
    maxAccumulatedResidualDiffThreshold = c.maxAccumulated();
    maxCachedSteps = c.maxCached();
    maxContinuousCachedSteps = c.maxContinuous();
    enableSeparateCfg = c.separateCfg();
    numInferenceSteps = c.steps();
    stepsComputationMask = c.mask();
    forceRefreshStepHint = c.refreshHint();
    cacheBufferPrecision = c.precision();
  }

  /** The reference defaults: F8B0, W8, I1, unlimited, threshold 0.08. */
  public static DBCacheConfig defaults() {
    return builder().build();
  }

  public static Builder builder() {
    return new Builder();
  }

  /**
   * A sparse overlay for a {@link ParamsModifier}: only the fields set on it override the base
   * config (cache-dit's {@code DBCacheConfig().reset(...)}).
   */
  public static CacheConfigOverlay.Builder reset() {
    return CacheConfigOverlay.builder();
  }

  @Override
  public CacheType cacheType() {
    return CacheType.DBCACHE;
  }

  @Override
  public Builder toBuilder() {
    Builder b = new Builder();
    CommonSettings.fill(this, b);
    return b;
  }

  @Override
  public DBCacheConfig overlay(CacheConfigOverlay overlay) {
    overlay.requireNoPruneFields();
    return overlay.applyTo(toBuilder()).build();
  }

  @Override
  public DBCacheConfig withNumInferenceSteps(int steps) {
    return toBuilder().numInferenceSteps(steps).build();
  }

  @Override
  public DBCacheConfig withoutForceRefreshStepHint() {
    return toBuilder().setForceRefreshStepHint(null).build();
  }

  @Override
  public String toString() {
    return strify();
  }

  /** Builder with the reference defaults. */
  public static final class Builder extends Settings<Builder> {
    Builder() {}

    public DBCacheConfig build() {
      return new DBCacheConfig(fnComputeBlocks, bnComputeBlocks, residualDiffThreshold,
          CommonSettings.optional(maxAccumulatedResidualDiffThreshold), maxWarmupSteps, warmupInterval,
          CommonSettings.optional(maxCachedSteps), CommonSettings.optional(maxContinuousCachedSteps),
          Optional.ofNullable(enableSeparateCfg), cfgComputeFirst, cfgDiffComputeSeparate,
          CommonSettings.optional(numInferenceSteps), Optional.ofNullable(stepsComputationMask), stepsComputationPolicy,
          CommonSettings.optional(forceRefreshStepHint), forceRefreshStepPolicy, Optional.ofNullable(cacheBufferPrecision));
    }
  }
}
