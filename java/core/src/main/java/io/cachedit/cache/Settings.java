package io.cachedit.cache;

import io.cachedit.error.ConfigException;
import java.util.EnumSet;
import java.util.List;
import java.util.TreeSet;

/**
 * Fluent setters shared by the config builders and the sparse overlay builder. Each setter checks
 * its value at once and throws {@link ConfigException} naming the field; the configs themselves are
 * immutable records that check again (and the rules between fields) when built.
 *
 * @param <B> the concrete builder
 */
public abstract class Settings<B extends Settings<B>> {
  // the values being built, with the reference defaults; null = unset (no limit / decided elsewhere)
  int fnComputeBlocks = 8;
  int bnComputeBlocks = 0;
  double residualDiffThreshold = 0.08;
  Double maxAccumulatedResidualDiffThreshold;
  int maxWarmupSteps = 8;
  int warmupInterval = 1;
  Integer maxCachedSteps;
  Integer maxContinuousCachedSteps;
  Boolean enableSeparateCfg;
  boolean cfgComputeFirst;
  boolean cfgDiffComputeSeparate = true;
  Integer numInferenceSteps;
  StepMask stepsComputationMask;
  StepsPolicy stepsComputationPolicy = StepsPolicy.DYNAMIC;
  Integer forceRefreshStepHint;
  RefreshPolicy forceRefreshStepPolicy = RefreshPolicy.ONCE;
  BufferPrecision cacheBufferPrecision;
  // DBPrune only
  boolean enableDynamicPruneThreshold;
  Double maxDynamicPruneThreshold;
  double dynamicPruneThresholdRelaxRatio = 1.25;
  List<Integer> nonPruneBlockIds = List.of();
  boolean forceReduceCalibratorVram;

  /** The fields a setter was called for (what an overlay overrides). */
  final EnumSet<CacheField> set = EnumSet.noneOf(CacheField.class);

  Settings() {}

  @SuppressWarnings("unchecked")
  final B self() {
    return (B) this;
  }

  private B mark(CacheField field) {
    set.add(field);
    return self();
  }

  /** First blocks, always computed; the diff probe. Default 8; must be >= 1. */
  public B fnComputeBlocks(int blocks) {
    fnComputeBlocks = Checks.atLeast(CacheField.FN_COMPUTE_BLOCKS, blocks, 1,
        "must be >= 1 (the first block is the diff probe)");
    return mark(CacheField.FN_COMPUTE_BLOCKS);
  }

  /** Last blocks, always computed (correct the approximated input). Default 0. */
  public B bnComputeBlocks(int blocks) {
    bnComputeBlocks = Checks.atLeast(CacheField.BN_COMPUTE_BLOCKS, blocks, 0, "must be >= 0");
    return mark(CacheField.BN_COMPUTE_BLOCKS);
  }

  /**
   * Relative L1 threshold below which a step is cached. Default 0.08; {@code 0} never caches, {@code >= 1}
   * caches every eligible step; must be finite and {@code >= 0}.
   */
  public B residualDiffThreshold(double threshold) {
    residualDiffThreshold = Checks.nonNegative(CacheField.RESIDUAL_DIFF_THRESHOLD, threshold);
    return mark(CacheField.RESIDUAL_DIFF_THRESHOLD);
  }

  /** Stop caching once the sum of recorded diffs reaches this. Default: no limit. */
  public B maxAccumulatedResidualDiffThreshold(double limit) {
    return setMaxAccumulated(limit);
  }

  B setMaxAccumulated(Double limit) {
    maxAccumulatedResidualDiffThreshold = limit == null ? null
        : Checks.nonNegative(CacheField.MAX_ACCUMULATED_RESIDUAL_DIFF_THRESHOLD, limit);
    return mark(CacheField.MAX_ACCUMULATED_RESIDUAL_DIFF_THRESHOLD);
  }

  /** Steps {@code 0..W-1} (every {@code warmupInterval}-th) always compute. Default 8. */
  public B maxWarmupSteps(int steps) {
    maxWarmupSteps = Checks.atLeast(CacheField.MAX_WARMUP_STEPS, steps, 0, "must be >= 0");
    return mark(CacheField.MAX_WARMUP_STEPS);
  }

  /** Only every k-th warm-up step is forced to compute. Default 1. */
  public B warmupInterval(int interval) {
    warmupInterval = Checks.atLeast(CacheField.WARMUP_INTERVAL, interval, 1, "must be >= 1");
    return mark(CacheField.WARMUP_INTERVAL);
  }

  /** Maximum cached steps per branch; -1 = unlimited (default). */
  public B maxCachedSteps(int steps) {
    maxCachedSteps = Checks.limit(CacheField.MAX_CACHED_STEPS, steps);
    return mark(CacheField.MAX_CACHED_STEPS);
  }

  /** Maximum run of consecutive cached steps; -1 = unlimited (default). */
  public B maxContinuousCachedSteps(int steps) {
    maxContinuousCachedSteps = Checks.limit(CacheField.MAX_CONTINUOUS_CACHED_STEPS, steps);
    return mark(CacheField.MAX_CONTINUOUS_CACHED_STEPS);
  }

  /** Separate cache state for the cond and uncond calls of a step. Default: from the adapter. */
  public B enableSeparateCfg(boolean separate) {
    return setEnableSeparateCfg(separate);
  }

  B setEnableSeparateCfg(Boolean separate) {
    enableSeparateCfg = separate;
    return mark(CacheField.ENABLE_SEPARATE_CFG);
  }

  /** The uncond (CFG) call precedes the cond call within a step (call-parity inference only). Default false. */
  public B cfgComputeFirst(boolean first) {
    cfgComputeFirst = first;
    return mark(CacheField.CFG_COMPUTE_FIRST);
  }

  /** The uncond branch computes its own diff (else it reuses the cond diff of the step). Default true. */
  public B cfgDiffComputeSeparate(boolean separate) {
    cfgDiffComputeSeparate = separate;
    return mark(CacheField.CFG_DIFF_COMPUTE_SEPARATE);
  }

  /** Steps per generation for transformer-only use (contexts refresh after each). Default: unset. */
  public B numInferenceSteps(int steps) {
    return setNumInferenceSteps(steps);
  }

  B setNumInferenceSteps(Integer steps) {
    numInferenceSteps = steps == null ? null
        : Checks.atLeast(CacheField.NUM_INFERENCE_STEPS, steps, 1, "must be >= 1");
    return mark(CacheField.NUM_INFERENCE_STEPS);
  }

  /** A steps computation mask (docs/algorithms.md section 7), or null for none. Default: none. */
  public B stepsComputationMask(StepMask mask) {
    stepsComputationMask = mask;
    return mark(CacheField.STEPS_COMPUTATION_MASK);
  }

  /** How 0-steps of the mask are treated. Default {@link StepsPolicy#DYNAMIC}. */
  public B stepsComputationPolicy(StepsPolicy policy) {
    stepsComputationPolicy = Checks.notNull(CacheField.STEPS_COMPUTATION_POLICY, policy, "dynamic or static");
    return mark(CacheField.STEPS_COMPUTATION_POLICY);
  }

  /** Refresh the context when the transformer call with this 0-based index starts. Default: never. */
  public B forceRefreshStepHint(int transformerCall) {
    return setForceRefreshStepHint(transformerCall);
  }

  B setForceRefreshStepHint(Integer transformerCall) {
    forceRefreshStepHint = transformerCall == null ? null : Checks.atLeast(CacheField.FORCE_REFRESH_STEP_HINT,
        transformerCall, 1, "must be >= 1 (a transformer call index)");
    return mark(CacheField.FORCE_REFRESH_STEP_HINT);
  }

  /** Refresh once or every {@code forceRefreshStepHint} calls. Default {@link RefreshPolicy#ONCE}. */
  public B forceRefreshStepPolicy(RefreshPolicy policy) {
    forceRefreshStepPolicy = Checks.notNull(CacheField.FORCE_REFRESH_STEP_POLICY, policy, "once or repeat");
    return mark(CacheField.FORCE_REFRESH_STEP_POLICY);
  }

  /**
   * Precision of held residuals (ours). Default: the engine's setting ({@link EngineSettings}), which
   * defaults to {@link BufferPrecision#FULL}.
   */
  public B cacheBufferPrecision(BufferPrecision precision) {
    return setCacheBufferPrecision(precision);
  }

  B setCacheBufferPrecision(BufferPrecision precision) {
    cacheBufferPrecision = precision;
    return mark(CacheField.CACHE_BUFFER_PRECISION);
  }

  B setEnableDynamicPruneThreshold(boolean enable) {
    enableDynamicPruneThreshold = enable;
    return mark(CacheField.ENABLE_DYNAMIC_PRUNE_THRESHOLD);
  }

  B setMaxDynamicPruneThreshold(Double max) {
    maxDynamicPruneThreshold = max == null ? null : Checks.nonNegative(CacheField.MAX_DYNAMIC_PRUNE_THRESHOLD, max);
    return mark(CacheField.MAX_DYNAMIC_PRUNE_THRESHOLD);
  }

  B setDynamicPruneThresholdRelaxRatio(double ratio) {
    dynamicPruneThresholdRelaxRatio = Checks.positive(CacheField.DYNAMIC_PRUNE_THRESHOLD_RELAX_RATIO, ratio);
    return mark(CacheField.DYNAMIC_PRUNE_THRESHOLD_RELAX_RATIO);
  }

  B setNonPruneBlockIds(List<Integer> ids) {
    nonPruneBlockIds = Checks.blockIds(CacheField.NON_PRUNE_BLOCK_IDS, ids);
    return mark(CacheField.NON_PRUNE_BLOCK_IDS);
  }

  B setForceReduceCalibratorVram(boolean reduce) {
    forceReduceCalibratorVram = reduce;
    return mark(CacheField.FORCE_REDUCE_CALIBRATOR_VRAM);
  }

  /** Sets a field by its config-file key from a parsed value; used by the file loader. */
  final B setByKey(String key, Object value, boolean pruneAllowed) {
    CacheField field = CacheField.byKey(key);
    if (field == null || (field.pruneOnly && !pruneAllowed)) {
      throw ConfigException.forField(key, "unknown cache setting \"" + key + "\"" + (field != null
          ? " (it applies only to cache_type: DBPrune)" : "") + "; known settings: " + CacheField.knownKeys(pruneAllowed));
    }
    String earlier = keysRead.putIfAbsent(field, key);
    if (earlier != null) {  // keys are matched ignoring case: two spellings of one setting must not race
      throw ConfigException.forField(key, "\"" + earlier + "\" and \"" + key + "\" are both the setting "
          + field.key + "; give it once");
    }
    field.parser.set(this, field.key, value);
    return self();
  }

  /** The config-file key each field was set from by {@link #setByKey}. */
  private final java.util.Map<CacheField, String> keysRead = new java.util.EnumMap<>(CacheField.class);

  /** Copies the fields {@code from} set (its {@link #set}) onto this builder. */
  final B copySetFields(Settings<?> from) {
    for (CacheField f : from.set) {
      f.copier.copy(from, this);
      set.add(f);
    }
    return self();
  }

  /** Copies every field of {@code from} (a config's builder), marking none as set. */
  final B copyAll(Settings<?> from) {
    for (CacheField f : CacheField.values()) {
      f.copier.copy(from, this);
    }
    return self();
  }

  /** Setters of the DBPrune-only fields. */
  public abstract static class Prune<B extends Prune<B>> extends Settings<B> {
    Prune() {}

    /** Raise the threshold per step from the step's first diffs (docs/algorithms.md section 4). Default false. */
    public B enableDynamicPruneThreshold(boolean enable) {
      return setEnableDynamicPruneThreshold(enable);
    }

    /** Cap of the dynamic threshold. Default: 2 x residualDiffThreshold. */
    public B maxDynamicPruneThreshold(double max) {
      return setMaxDynamicPruneThreshold(max);
    }

    /** Factor on the mean of the step's first diffs. Default 1.25. */
    public B dynamicPruneThresholdRelaxRatio(double ratio) {
      return setDynamicPruneThresholdRelaxRatio(ratio);
    }

    /** Blocks that are never pruned, besides the first Fn and last Bn. Default none. */
    public B nonPruneBlockIds(List<Integer> ids) {
      return setNonPruneBlockIds(ids);
    }

    /**
     * With a calibrator: keep the calibrators' states in bfloat16 (when the model's dtype is wider) and
     * compare every fourth element of the last dimension in the per-block diffs, as the reference does
     * (docs/algorithms.md section 4). Default false.
     */
    public B forceReduceCalibratorVram(boolean reduce) {
      return setForceReduceCalibratorVram(reduce);
    }
  }

  /** The value checks, shared with the records' compact constructors. */
  static final class Checks {
    private Checks() {}

    static int atLeast(CacheField f, int v, int min, String rule) {
      if (v < min) {
        throw new ConfigException(f.key, v, rule);
      }
      return v;
    }

    static Integer limit(CacheField f, int v) {
      if (v < -1) {
        throw new ConfigException(f.key, v, "must be >= 0, or -1 for unlimited");
      }
      return v < 0 ? null : v;
    }

    static double finite(CacheField f, double v) {
      if (!Double.isFinite(v)) {
        throw new ConfigException(f.key, v, "must be a finite number");
      }
      return v;
    }

    static double nonNegative(CacheField f, double v) {
      if (finite(f, v) < 0) {
        throw new ConfigException(f.key, v, "must be >= 0");
      }
      return v;
    }

    static double positive(CacheField f, double v) {
      if (finite(f, v) <= 0) {
        throw new ConfigException(f.key, v, "must be > 0");
      }
      return v;
    }

    static <T> T notNull(CacheField f, T v, String allowed) {
      if (v == null) {
        throw new ConfigException(f.key, null, "must be " + allowed);
      }
      return v;
    }

    static List<Integer> blockIds(CacheField f, List<Integer> ids) {
      if (ids == null) {
        return List.of();
      }
      for (Integer id : ids) {
        if (id == null || id < 0) {
          throw new ConfigException(f.key, ids, "must be a list of block indices >= 0");
        }
      }
      return List.copyOf(new TreeSet<>(ids));
    }
  }
}
