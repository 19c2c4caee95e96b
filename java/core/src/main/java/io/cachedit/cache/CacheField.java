package io.cachedit.cache;

import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeSet;

/**
 * The key table of the cache settings: every field's config-file key (cache-dit's names), whether it
 * belongs to DBPrune only, how a parsed file value sets it on a builder, how an overlay copies it and
 * how it is written back as a file value. Builders, overlays ({@link ParamsModifier}), the YAML/JSON
 * loader and {@link BasicCacheConfig#asMap()} all go through this one table, so a key is spelled once.
 */
enum CacheField {
  FN_COMPUTE_BLOCKS("Fn_compute_blocks", false,
      (s, k, v) -> s.fnComputeBlocks(ConfigValues.integer(k, v)),
      (f, t) -> t.fnComputeBlocks = f.fnComputeBlocks, s -> s.fnComputeBlocks),
  BN_COMPUTE_BLOCKS("Bn_compute_blocks", false,
      (s, k, v) -> s.bnComputeBlocks(ConfigValues.integer(k, v)),
      (f, t) -> t.bnComputeBlocks = f.bnComputeBlocks, s -> s.bnComputeBlocks),
  RESIDUAL_DIFF_THRESHOLD("residual_diff_threshold", false,
      (s, k, v) -> s.residualDiffThreshold(ConfigValues.number(k, v)),
      (f, t) -> t.residualDiffThreshold = f.residualDiffThreshold, s -> s.residualDiffThreshold),
  MAX_ACCUMULATED_RESIDUAL_DIFF_THRESHOLD("max_accumulated_residual_diff_threshold", false,
      (s, k, v) -> s.setMaxAccumulated(v == null ? null : ConfigValues.number(k, v)),
      (f, t) -> t.maxAccumulatedResidualDiffThreshold = f.maxAccumulatedResidualDiffThreshold,
      s -> s.maxAccumulatedResidualDiffThreshold),
  MAX_WARMUP_STEPS("max_warmup_steps", false,
      (s, k, v) -> s.maxWarmupSteps(ConfigValues.integer(k, v)),
      (f, t) -> t.maxWarmupSteps = f.maxWarmupSteps, s -> s.maxWarmupSteps),
  WARMUP_INTERVAL("warmup_interval", false,
      (s, k, v) -> s.warmupInterval(ConfigValues.integer(k, v)),
      (f, t) -> t.warmupInterval = f.warmupInterval, s -> s.warmupInterval),
  MAX_CACHED_STEPS("max_cached_steps", false,
      (s, k, v) -> s.maxCachedSteps(v == null ? -1 : ConfigValues.integer(k, v)),
      (f, t) -> t.maxCachedSteps = f.maxCachedSteps, s -> s.maxCachedSteps == null ? -1 : s.maxCachedSteps),
  MAX_CONTINUOUS_CACHED_STEPS("max_continuous_cached_steps", false,
      (s, k, v) -> s.maxContinuousCachedSteps(v == null ? -1 : ConfigValues.integer(k, v)),
      (f, t) -> t.maxContinuousCachedSteps = f.maxContinuousCachedSteps,
      s -> s.maxContinuousCachedSteps == null ? -1 : s.maxContinuousCachedSteps),
  ENABLE_SEPARATE_CFG("enable_separate_cfg", false,
      (s, k, v) -> s.setEnableSeparateCfg(v == null ? null : ConfigValues.bool(k, v)),
      (f, t) -> t.enableSeparateCfg = f.enableSeparateCfg, s -> s.enableSeparateCfg),
  CFG_COMPUTE_FIRST("cfg_compute_first", false,
      (s, k, v) -> s.cfgComputeFirst(ConfigValues.bool(k, v)),
      (f, t) -> t.cfgComputeFirst = f.cfgComputeFirst, s -> s.cfgComputeFirst),
  CFG_DIFF_COMPUTE_SEPARATE("cfg_diff_compute_separate", false,
      (s, k, v) -> s.cfgDiffComputeSeparate(ConfigValues.bool(k, v)),
      (f, t) -> t.cfgDiffComputeSeparate = f.cfgDiffComputeSeparate, s -> s.cfgDiffComputeSeparate),
  NUM_INFERENCE_STEPS("num_inference_steps", false,
      (s, k, v) -> s.setNumInferenceSteps(v == null ? null : ConfigValues.integer(k, v)),
      (f, t) -> t.numInferenceSteps = f.numInferenceSteps, s -> s.numInferenceSteps),
  STEPS_COMPUTATION_MASK("steps_computation_mask", false,
      (s, k, v) -> s.stepsComputationMask(v == null ? null : ConfigValues.mask(k, v)),
      (f, t) -> t.stepsComputationMask = f.stepsComputationMask,
      s -> s.stepsComputationMask == null ? null : s.stepsComputationMask.toString()),
  STEPS_COMPUTATION_POLICY("steps_computation_policy", false,
      (s, k, v) -> s.stepsComputationPolicy(ConfigValues.enumValue(k, v, StepsPolicy.class)),
      (f, t) -> t.stepsComputationPolicy = f.stepsComputationPolicy, s -> name(s.stepsComputationPolicy)),
  FORCE_REFRESH_STEP_HINT("force_refresh_step_hint", false,
      (s, k, v) -> s.setForceRefreshStepHint(v == null ? null : ConfigValues.integer(k, v)),
      (f, t) -> t.forceRefreshStepHint = f.forceRefreshStepHint, s -> s.forceRefreshStepHint),
  FORCE_REFRESH_STEP_POLICY("force_refresh_step_policy", false,
      (s, k, v) -> s.forceRefreshStepPolicy(ConfigValues.enumValue(k, v, RefreshPolicy.class)),
      (f, t) -> t.forceRefreshStepPolicy = f.forceRefreshStepPolicy, s -> name(s.forceRefreshStepPolicy)),
  CACHE_BUFFER_PRECISION("cache_buffer_precision", false,
      (s, k, v) -> s.setCacheBufferPrecision(v == null ? null : ConfigValues.enumValue(k, v, BufferPrecision.class)),
      (f, t) -> t.cacheBufferPrecision = f.cacheBufferPrecision, s -> name(s.cacheBufferPrecision)),
  // DBPrune only
  ENABLE_DYNAMIC_PRUNE_THRESHOLD("enable_dynamic_prune_threshold", true,
      (s, k, v) -> s.setEnableDynamicPruneThreshold(ConfigValues.bool(k, v)),
      (f, t) -> t.enableDynamicPruneThreshold = f.enableDynamicPruneThreshold, s -> s.enableDynamicPruneThreshold),
  MAX_DYNAMIC_PRUNE_THRESHOLD("max_dynamic_prune_threshold", true,
      (s, k, v) -> s.setMaxDynamicPruneThreshold(v == null ? null : ConfigValues.number(k, v)),
      (f, t) -> t.maxDynamicPruneThreshold = f.maxDynamicPruneThreshold, s -> s.maxDynamicPruneThreshold),
  DYNAMIC_PRUNE_THRESHOLD_RELAX_RATIO("dynamic_prune_threshold_relax_ratio", true,
      (s, k, v) -> s.setDynamicPruneThresholdRelaxRatio(ConfigValues.number(k, v)),
      (f, t) -> t.dynamicPruneThresholdRelaxRatio = f.dynamicPruneThresholdRelaxRatio,
      s -> s.dynamicPruneThresholdRelaxRatio),
  NON_PRUNE_BLOCK_IDS("non_prune_block_ids", true,
      (s, k, v) -> s.setNonPruneBlockIds(v == null ? List.of() : ConfigValues.integers(k, v)),
      (f, t) -> t.nonPruneBlockIds = f.nonPruneBlockIds, s -> s.nonPruneBlockIds),
  FORCE_REDUCE_CALIBRATOR_VRAM("force_reduce_calibrator_vram", true,
      (s, k, v) -> s.setForceReduceCalibratorVram(ConfigValues.bool(k, v)),
      (f, t) -> t.forceReduceCalibratorVram = f.forceReduceCalibratorVram, s -> s.forceReduceCalibratorVram);

  /** Sets the field on a builder from a value parsed from YAML/JSON (checked and converted). */
  @FunctionalInterface
  interface Parser {
    void set(Settings<?> settings, String key, Object value);
  }

  /** Copies the field from one builder to another (overlays). */
  @FunctionalInterface
  interface Copier {
    void copy(Settings<?> from, Settings<?> to);
  }

  /** Reads the field of a builder as a config-file value (the reference's form: -1 for unlimited). */
  @FunctionalInterface
  interface Reader {
    Object read(Settings<?> settings);
  }

  final String key;
  final boolean pruneOnly;
  final Parser parser;
  final Copier copier;
  final Reader reader;

  CacheField(String key, boolean pruneOnly, Parser parser, Copier copier, Reader reader) {
    this.key = key;
    this.pruneOnly = pruneOnly;
    this.parser = parser;
    this.copier = copier;
    this.reader = reader;
  }

  private static final Map<String, CacheField> BY_KEY;

  static {
    Map<String, CacheField> m = new java.util.HashMap<>();
    for (CacheField f : values()) {
      m.put(f.key.toLowerCase(Locale.ROOT), f);
    }
    BY_KEY = Map.copyOf(m);
  }

  /** The field for a config-file key (case-insensitive), or null. */
  static CacheField byKey(String key) {
    return BY_KEY.get(key.toLowerCase(Locale.ROOT));
  }

  static String knownKeys(boolean prune) {
    TreeSet<String> keys = new TreeSet<>();
    for (CacheField f : values()) {
      if (prune || !f.pruneOnly) {
        keys.add(f.key);
      }
    }
    return String.join(", ", keys);
  }

  private static String name(Enum<?> e) {
    return e == null ? null : e.name().toLowerCase(Locale.ROOT);
  }
}
