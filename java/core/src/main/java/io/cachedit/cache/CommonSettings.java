package io.cachedit.cache;

import io.cachedit.error.ConfigException;
import java.util.Optional;
import java.util.OptionalDouble;
import java.util.OptionalInt;

/**
 * The checks and conversions both config records share: each value against its rule, the rules
 * between fields, nulls of optional components made empty.
 */
record CommonSettings(OptionalDouble maxAccumulated, OptionalInt maxCached, OptionalInt maxContinuous,
    Optional<Boolean> separateCfg, OptionalInt steps, Optional<StepMask> mask, OptionalInt refreshHint,
    Optional<BufferPrecision> precision) {

  @SuppressWarnings("checkstyle:ParameterNumber")
  static CommonSettings check(int fn, int bn, double threshold, OptionalDouble maxAccumulated, int warmup,
      int interval, OptionalInt maxCached, OptionalInt maxContinuous, Optional<Boolean> separateCfg,
      boolean cfgComputeFirst, boolean cfgDiffComputeSeparate, OptionalInt steps, Optional<StepMask> mask,
      StepsPolicy policy, OptionalInt refreshHint, RefreshPolicy refreshPolicy, Optional<BufferPrecision> precision) {
    Settings.Checks.atLeast(CacheField.FN_COMPUTE_BLOCKS, fn, 1, "must be >= 1 (the first block is the diff probe)");
    Settings.Checks.atLeast(CacheField.BN_COMPUTE_BLOCKS, bn, 0, "must be >= 0");
    Settings.Checks.nonNegative(CacheField.RESIDUAL_DIFF_THRESHOLD, threshold);
    maxAccumulated = maxAccumulated == null ? OptionalDouble.empty() : maxAccumulated;
    if (maxAccumulated.isPresent()) {
      Settings.Checks.nonNegative(CacheField.MAX_ACCUMULATED_RESIDUAL_DIFF_THRESHOLD, maxAccumulated.getAsDouble());
    }
    Settings.Checks.atLeast(CacheField.MAX_WARMUP_STEPS, warmup, 0, "must be >= 0");
    Settings.Checks.atLeast(CacheField.WARMUP_INTERVAL, interval, 1, "must be >= 1");
    maxCached = nonNegative(CacheField.MAX_CACHED_STEPS, maxCached);
    maxContinuous = nonNegative(CacheField.MAX_CONTINUOUS_CACHED_STEPS, maxContinuous);
    separateCfg = separateCfg == null ? Optional.empty() : separateCfg;
    steps = steps == null ? OptionalInt.empty() : steps;
    if (steps.isPresent()) {
      Settings.Checks.atLeast(CacheField.NUM_INFERENCE_STEPS, steps.getAsInt(), 1, "must be >= 1");
    }
    mask = mask == null ? Optional.empty() : mask;
    Settings.Checks.notNull(CacheField.STEPS_COMPUTATION_POLICY, policy, "dynamic or static");
    refreshHint = refreshHint == null ? OptionalInt.empty() : refreshHint;
    if (refreshHint.isPresent()) {
      Settings.Checks.atLeast(CacheField.FORCE_REFRESH_STEP_HINT, refreshHint.getAsInt(), 1,
          "must be >= 1 (a transformer call index)");
    }
    Settings.Checks.notNull(CacheField.FORCE_REFRESH_STEP_POLICY, refreshPolicy, "once or repeat");
    precision = precision == null ? Optional.empty() : precision;
    if (separateCfg.orElse(false) && cfgDiffComputeSeparate && cfgComputeFirst) {
      throw new ConfigException("cfg_compute_first = true requires cfg_diff_compute_separate = false when "
          + "enable_separate_cfg is on: the branch computed first cannot reuse the other branch's diff "
          + "(docs/algorithms.md section 5)");
    }
    if (mask.isPresent() && steps.isPresent()) {
      StepMask m = mask.get();
      if (!m.isPolicy() && m.length() != steps.getAsInt()) {
        throw new ConfigException("steps_computation_mask has " + m.length() + " steps but num_inference_steps = "
            + steps.getAsInt() + "; they must match");
      }
      if (m.isPolicy()) {
        m.resolve(steps.getAsInt());  // rejects step counts a policy cannot serve
      }
    }
    return new CommonSettings(maxAccumulated, maxCached, maxContinuous, separateCfg, steps, mask, refreshHint,
        precision);
  }

  private static OptionalInt nonNegative(CacheField f, OptionalInt v) {
    if (v == null) {
      return OptionalInt.empty();
    }
    if (v.isPresent() && v.getAsInt() < 0) {
      throw new ConfigException(f.key, v.getAsInt(), "must be >= 0 (empty for unlimited)");
    }
    return v;
  }

  static OptionalInt optional(Integer v) {
    return v == null ? OptionalInt.empty() : OptionalInt.of(v);
  }

  static OptionalDouble optional(Double v) {
    return v == null ? OptionalDouble.empty() : OptionalDouble.of(v);
  }

  /** Copies the shared values of a config into a builder (nothing marked as set). */
  static void fill(BasicCacheConfig c, Settings<?> b) {
    b.fnComputeBlocks = c.fnComputeBlocks();
    b.bnComputeBlocks = c.bnComputeBlocks();
    b.residualDiffThreshold = c.residualDiffThreshold();
    b.maxAccumulatedResidualDiffThreshold = c.maxAccumulatedResidualDiffThreshold().isPresent()
        ? c.maxAccumulatedResidualDiffThreshold().getAsDouble() : null;
    b.maxWarmupSteps = c.maxWarmupSteps();
    b.warmupInterval = c.warmupInterval();
    b.maxCachedSteps = c.maxCachedSteps().isPresent() ? c.maxCachedSteps().getAsInt() : null;
    b.maxContinuousCachedSteps = c.maxContinuousCachedSteps().isPresent()
        ? c.maxContinuousCachedSteps().getAsInt() : null;
    b.enableSeparateCfg = c.enableSeparateCfg().orElse(null);
    b.cfgComputeFirst = c.cfgComputeFirst();
    b.cfgDiffComputeSeparate = c.cfgDiffComputeSeparate();
    b.numInferenceSteps = c.numInferenceSteps().isPresent() ? c.numInferenceSteps().getAsInt() : null;
    b.stepsComputationMask = c.stepsComputationMask().orElse(null);
    b.stepsComputationPolicy = c.stepsComputationPolicy();
    b.forceRefreshStepHint = c.forceRefreshStepHint().isPresent() ? c.forceRefreshStepHint().getAsInt() : null;
    b.forceRefreshStepPolicy = c.forceRefreshStepPolicy();
    b.cacheBufferPrecision = c.cacheBufferPrecision().orElse(null);
  }
}
