package io.cachedit.cache;

import java.util.List;
import java.util.Optional;
import java.util.OptionalDouble;
import java.util.OptionalInt;

/**
 * Dynamic Block Prune settings (docs/algorithms.md section 4): each block (outside the first Fn, last
 * Bn and {@code nonPruneBlockIds}) is skipped, its cached residual reused, when its input differs from
 * its input at the last step it ran by less than the threshold. Immutable; build it with
 * {@link #builder()}. The shared components are documented on {@link BasicCacheConfig}.
 *
 * @param enableDynamicPruneThreshold raise the threshold per step from the step's first diffs
 * @param maxDynamicPruneThreshold cap of the dynamic threshold; empty = 2 x residualDiffThreshold
 * @param dynamicPruneThresholdRelaxRatio factor on the mean of the step's first diffs
 * @param nonPruneBlockIds blocks never pruned besides the first Fn and last Bn (sorted, distinct)
 * @param forceReduceCalibratorVram with a calibrator: bf16 calibrator states and every-4th-element probes
 */
public record DBPruneConfig(int fnComputeBlocks, int bnComputeBlocks, double residualDiffThreshold,
    OptionalDouble maxAccumulatedResidualDiffThreshold, int maxWarmupSteps, int warmupInterval,
    OptionalInt maxCachedSteps, OptionalInt maxContinuousCachedSteps, Optional<Boolean> enableSeparateCfg,
    boolean cfgComputeFirst, boolean cfgDiffComputeSeparate, OptionalInt numInferenceSteps,
    Optional<StepMask> stepsComputationMask, StepsPolicy stepsComputationPolicy, OptionalInt forceRefreshStepHint,
    RefreshPolicy forceRefreshStepPolicy, Optional<BufferPrecision> cacheBufferPrecision,
    boolean enableDynamicPruneThreshold, OptionalDouble maxDynamicPruneThreshold,
    double dynamicPruneThresholdRelaxRatio, List<Integer> nonPruneBlockIds, boolean forceReduceCalibratorVram)
    implements BasicCacheConfig {

  public DBPruneConfig {
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
    maxDynamicPruneThreshold = maxDynamicPruneThreshold == null ? OptionalDouble.empty() : maxDynamicPruneThreshold;
    if (maxDynamicPruneThreshold.isPresent()) {
      Settings.Checks.nonNegative(CacheField.MAX_DYNAMIC_PRUNE_THRESHOLD, maxDynamicPruneThreshold.getAsDouble());
    }
    Settings.Checks.positive(CacheField.DYNAMIC_PRUNE_THRESHOLD_RELAX_RATIO, dynamicPruneThresholdRelaxRatio);
    nonPruneBlockIds = Settings.Checks.blockIds(CacheField.NON_PRUNE_BLOCK_IDS, nonPruneBlockIds);
  }

  /** DBPrune with the reference defaults (those of DBCache plus the prune settings). */
  public static DBPruneConfig defaults() {
    return builder().build();
  }

  public static Builder builder() {
    return new Builder();
  }

  @Override
  public CacheType cacheType() {
    return CacheType.DBPRUNE;
  }

  @Override
  public Builder toBuilder() {
    Builder b = new Builder();
    CommonSettings.fill(this, b);
    b.enableDynamicPruneThreshold = enableDynamicPruneThreshold;
    b.maxDynamicPruneThreshold = maxDynamicPruneThreshold.isPresent() ? maxDynamicPruneThreshold.getAsDouble() : null;
    b.dynamicPruneThresholdRelaxRatio = dynamicPruneThresholdRelaxRatio;
    b.nonPruneBlockIds = nonPruneBlockIds;
    b.forceReduceCalibratorVram = forceReduceCalibratorVram;
    return b;
  }

  @Override
  public DBPruneConfig overlay(CacheConfigOverlay overlay) {
    return overlay.applyTo(toBuilder()).build();
  }

  @Override
  public DBPruneConfig withNumInferenceSteps(int steps) {
    return toBuilder().numInferenceSteps(steps).build();
  }

  @Override
  public DBPruneConfig withoutForceRefreshStepHint() {
    return toBuilder().setForceRefreshStepHint(null).build();
  }

  @Override
  public String toString() {
    return strify();
  }

  /** Builder with the reference defaults. */
  public static final class Builder extends Settings.Prune<Builder> {
    Builder() {}

    public DBPruneConfig build() {
      return new DBPruneConfig(fnComputeBlocks, bnComputeBlocks, residualDiffThreshold,
          CommonSettings.optional(maxAccumulatedResidualDiffThreshold), maxWarmupSteps, warmupInterval,
          CommonSettings.optional(maxCachedSteps), CommonSettings.optional(maxContinuousCachedSteps),
          Optional.ofNullable(enableSeparateCfg), cfgComputeFirst, cfgDiffComputeSeparate,
          CommonSettings.optional(numInferenceSteps), Optional.ofNullable(stepsComputationMask), stepsComputationPolicy,
          CommonSettings.optional(forceRefreshStepHint), forceRefreshStepPolicy, Optional.ofNullable(cacheBufferPrecision),
          enableDynamicPruneThreshold, CommonSettings.optional(maxDynamicPruneThreshold),
          dynamicPruneThresholdRelaxRatio, nonPruneBlockIds, forceReduceCalibratorVram);
    }
  }
}
