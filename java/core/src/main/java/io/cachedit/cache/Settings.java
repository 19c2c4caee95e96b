package io.cachedit.cache;

import java.util.EnumMap;
import java.util.List;

/**
 * Fluent setters shared by the config builders and the sparse overlay builder. Each setter checks
 * its value at once and throws {@link ConfigException} naming the field.
 *
 * @param <B> the concrete builder
 */
public abstract class Settings<B extends Settings<B>> {
  final EnumMap<CacheField, Object> values = new EnumMap<>(CacheField.class);

  Settings() {}

  @SuppressWarnings("unchecked")
  final B self() {
    return (B) this;
  }

  final B set(CacheField field, Object value) {
    values.put(field, field.check(value));
    return self();
  }

  /** First blocks, always computed; the diff probe. Default 8; must be >= 1. */
  public B fnComputeBlocks(int blocks) {
    return set(CacheField.FN_COMPUTE_BLOCKS, blocks);
  }

  /** Last blocks, always computed (correct the approximated input). Default 0. */
  public B bnComputeBlocks(int blocks) {
    return set(CacheField.BN_COMPUTE_BLOCKS, blocks);
  }

  /** Relative L1 threshold below which a step is cached. Default 0.08; {@code <= 0} never caches, {@code >= 1} always. */
  public B residualDiffThreshold(double threshold) {
    return set(CacheField.RESIDUAL_DIFF_THRESHOLD, threshold);
  }

  /** Stop caching once the sum of recorded diffs reaches this. Default: no limit. */
  public B maxAccumulatedResidualDiffThreshold(double limit) {
    return set(CacheField.MAX_ACCUMULATED_RESIDUAL_DIFF_THRESHOLD, limit);
  }

  /** Steps {@code 0..W-1} (every {@code warmupInterval}-th) always compute. Default 8. */
  public B maxWarmupSteps(int steps) {
    return set(CacheField.MAX_WARMUP_STEPS, steps);
  }

  /** Only every k-th warm-up step is forced to compute. Default 1. */
  public B warmupInterval(int interval) {
    return set(CacheField.WARMUP_INTERVAL, interval);
  }

  /** Maximum cached steps per branch; -1 = unlimited (default). */
  public B maxCachedSteps(int steps) {
    return set(CacheField.MAX_CACHED_STEPS, steps);
  }

  /** Maximum run of consecutive cached steps; -1 = unlimited (default). */
  public B maxContinuousCachedSteps(int steps) {
    return set(CacheField.MAX_CONTINUOUS_CACHED_STEPS, steps);
  }

  /** Separate cache state for the cond and uncond calls of a step. Default: from the adapter. */
  public B enableSeparateCfg(boolean separate) {
    return set(CacheField.ENABLE_SEPARATE_CFG, separate);
  }

  /** The uncond (CFG) call precedes the cond call within a step (call-parity inference only). Default false. */
  public B cfgComputeFirst(boolean first) {
    return set(CacheField.CFG_COMPUTE_FIRST, first);
  }

  /** The uncond branch computes its own diff (else it reuses the cond diff of the step). Default true. */
  public B cfgDiffComputeSeparate(boolean separate) {
    return set(CacheField.CFG_DIFF_COMPUTE_SEPARATE, separate);
  }

  /** Steps per generation for transformer-only use (contexts refresh after each). Default: unset. */
  public B numInferenceSteps(int steps) {
    return set(CacheField.NUM_INFERENCE_STEPS, steps);
  }

  /** A steps computation mask (SPEC 7). Default: none. */
  public B stepsComputationMask(StepMask mask) {
    return set(CacheField.STEPS_COMPUTATION_MASK, mask);
  }

  /** How 0-steps of the mask are treated. Default {@link StepsPolicy#DYNAMIC}. */
  public B stepsComputationPolicy(StepsPolicy policy) {
    return set(CacheField.STEPS_COMPUTATION_POLICY, policy);
  }

  /** Refresh the context when the transformer call with this 0-based index starts. Default: never. */
  public B forceRefreshStepHint(int transformerCall) {
    return set(CacheField.FORCE_REFRESH_STEP_HINT, transformerCall);
  }

  /** Refresh once or every {@code forceRefreshStepHint} calls. Default {@link RefreshPolicy#ONCE}. */
  public B forceRefreshStepPolicy(RefreshPolicy policy) {
    return set(CacheField.FORCE_REFRESH_STEP_POLICY, policy);
  }

  /** Precision of held residuals. Default {@link BufferPrecision#FULL}. */
  public B cacheBufferPrecision(BufferPrecision precision) {
    return set(CacheField.CACHE_BUFFER_PRECISION, precision);
  }

  /** Sets a field by its config-file key from a parsed value; used by the file loader. */
  B setByKey(String key, Object value, boolean pruneAllowed) {
    CacheField field = CacheField.byKey(key);
    if (field == null || (field.pruneOnly && !pruneAllowed)) {
      throw new ConfigException("unknown cache setting \"" + key + "\"" + (field != null
          ? " (it applies only to cache_type: DBPrune)" : "") + "; known settings: " + CacheField.knownKeys(pruneAllowed));
    }
    return set(field, ConfigValues.coerce(field, value));
  }

  /** Setters of the DBPrune-only fields. */
  public abstract static class Prune<B extends Prune<B>> extends Settings<B> {
    Prune() {}

    /** Raise the threshold per step from the step's first diffs (SPEC 4). Default false. */
    public B enableDynamicPruneThreshold(boolean enable) {
      return set(CacheField.ENABLE_DYNAMIC_PRUNE_THRESHOLD, enable);
    }

    /** Cap of the dynamic threshold. Default: 2 x residualDiffThreshold. */
    public B maxDynamicPruneThreshold(double max) {
      return set(CacheField.MAX_DYNAMIC_PRUNE_THRESHOLD, max);
    }

    /** Factor on the mean of the step's first diffs. Default 1.25. */
    public B dynamicPruneThresholdRelaxRatio(double ratio) {
      return set(CacheField.DYNAMIC_PRUNE_THRESHOLD_RELAX_RATIO, ratio);
    }

    /** Blocks that are never pruned, besides the first Fn and last Bn. Default none. */
    public B nonPruneBlockIds(List<Integer> ids) {
      return set(CacheField.NON_PRUNE_BLOCK_IDS, ids);
    }
  }
}
