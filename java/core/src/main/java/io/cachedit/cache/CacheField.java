package io.cachedit.cache;

import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeSet;

/**
 * Every setting of a cache config, with its config-file key (cache-dit's names), type, default and
 * value check. Configs, overlays (ParamsModifier) and the YAML/JSON loader all go through this table.
 */
enum CacheField {
  FN_COMPUTE_BLOCKS("Fn_compute_blocks", Integer.class, 8, false),
  BN_COMPUTE_BLOCKS("Bn_compute_blocks", Integer.class, 0, false),
  RESIDUAL_DIFF_THRESHOLD("residual_diff_threshold", Double.class, 0.08, false),
  MAX_ACCUMULATED_RESIDUAL_DIFF_THRESHOLD("max_accumulated_residual_diff_threshold", Double.class, null, false),
  MAX_WARMUP_STEPS("max_warmup_steps", Integer.class, 8, false),
  WARMUP_INTERVAL("warmup_interval", Integer.class, 1, false),
  MAX_CACHED_STEPS("max_cached_steps", Integer.class, -1, false),
  MAX_CONTINUOUS_CACHED_STEPS("max_continuous_cached_steps", Integer.class, -1, false),
  ENABLE_SEPARATE_CFG("enable_separate_cfg", Boolean.class, null, false),
  CFG_COMPUTE_FIRST("cfg_compute_first", Boolean.class, false, false),
  CFG_DIFF_COMPUTE_SEPARATE("cfg_diff_compute_separate", Boolean.class, true, false),
  NUM_INFERENCE_STEPS("num_inference_steps", Integer.class, null, false),
  STEPS_COMPUTATION_MASK("steps_computation_mask", StepMask.class, null, false),
  STEPS_COMPUTATION_POLICY("steps_computation_policy", StepsPolicy.class, StepsPolicy.DYNAMIC, false),
  FORCE_REFRESH_STEP_HINT("force_refresh_step_hint", Integer.class, null, false),
  FORCE_REFRESH_STEP_POLICY("force_refresh_step_policy", RefreshPolicy.class, RefreshPolicy.ONCE, false),
  CACHE_BUFFER_PRECISION("cache_buffer_precision", BufferPrecision.class, BufferPrecision.FULL, false),
  // DBPrune only
  ENABLE_DYNAMIC_PRUNE_THRESHOLD("enable_dynamic_prune_threshold", Boolean.class, false, true),
  MAX_DYNAMIC_PRUNE_THRESHOLD("max_dynamic_prune_threshold", Double.class, null, true),
  DYNAMIC_PRUNE_THRESHOLD_RELAX_RATIO("dynamic_prune_threshold_relax_ratio", Double.class, 1.25, true),
  NON_PRUNE_BLOCK_IDS("non_prune_block_ids", List.class, List.of(), true);

  final String key;
  final Class<?> type;
  final Object defaultValue;
  final boolean pruneOnly;

  CacheField(String key, Class<?> type, Object defaultValue, boolean pruneOnly) {
    this.key = key;
    this.type = type;
    this.defaultValue = defaultValue;
    this.pruneOnly = pruneOnly;
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

  /** Checks and normalises one value; throws {@link ConfigException} naming the field. */
  Object check(Object value) {
    if (value == null) {
      return null;
    }
    switch (this) {
      case FN_COMPUTE_BLOCKS -> requireInt(value, 1, "Fn must be >= 1 (the first block is the diff probe)");
      case BN_COMPUTE_BLOCKS, MAX_WARMUP_STEPS -> requireInt(value, 0, "must be >= 0");
      case WARMUP_INTERVAL -> requireInt(value, 1, "must be >= 1");
      case MAX_CACHED_STEPS, MAX_CONTINUOUS_CACHED_STEPS -> requireInt(value, -1, "must be >= 0, or -1 for unlimited");
      case NUM_INFERENCE_STEPS -> requireInt(value, 1, "must be >= 1");
      case FORCE_REFRESH_STEP_HINT -> requireInt(value, 1, "must be >= 1 (a transformer call index)");
      case RESIDUAL_DIFF_THRESHOLD -> requireFinite(value);
      case MAX_ACCUMULATED_RESIDUAL_DIFF_THRESHOLD, MAX_DYNAMIC_PRUNE_THRESHOLD -> {
        double d = requireFinite(value);
        if (d < 0) {
          throw new ConfigException(key, value, "must be >= 0");
        }
      }
      case DYNAMIC_PRUNE_THRESHOLD_RELAX_RATIO -> {
        double d = requireFinite(value);
        if (d <= 0) {
          throw new ConfigException(key, value, "must be > 0");
        }
      }
      case NON_PRUNE_BLOCK_IDS -> {
        List<?> ids = (List<?>) value;
        for (Object id : ids) {
          if (!(id instanceof Integer i) || i < 0) {
            throw new ConfigException(key, value, "must be a list of block indices >= 0");
          }
        }
        return List.copyOf(new TreeSet<>((List<Integer>) ids));
      }
      default -> { }
    }
    return value;
  }

  private void requireInt(Object value, int min, String rule) {
    int v = (Integer) value;
    if (v < min) {
      throw new ConfigException(key, value, rule);
    }
  }

  private double requireFinite(Object value) {
    double d = (Double) value;
    if (!Double.isFinite(d)) {
      throw new ConfigException(key, value, "must be a finite number");
    }
    return d;
  }
}
