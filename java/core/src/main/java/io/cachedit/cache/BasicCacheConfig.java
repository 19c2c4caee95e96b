package io.cachedit.cache;

import java.math.BigDecimal;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.OptionalDouble;
import java.util.OptionalInt;

/**
 * Settings shared by {@link DBCacheConfig} and {@link DBPruneConfig} (SPEC 3.1). Immutable; every
 * value is checked when set and cross-field rules when built, with messages that name the field.
 * Defaults are the reference's: F8B0, 8 warm-up steps, interval 1, unlimited cached steps,
 * threshold 0.08 ({@code DBCache_F8B0_W8I1M0MC0_R0.08}).
 */
public abstract sealed class BasicCacheConfig permits DBCacheConfig, DBPruneConfig {
  final EnumMap<CacheField, Object> values;

  BasicCacheConfig(EnumMap<CacheField, Object> settings) {
    EnumMap<CacheField, Object> complete = defaultValues();
    complete.putAll(settings);
    this.values = complete;
    validate();
  }

  static EnumMap<CacheField, Object> defaultValues() {
    EnumMap<CacheField, Object> m = new EnumMap<>(CacheField.class);
    for (CacheField f : CacheField.values()) {
      m.put(f, f.defaultValue);
    }
    return m;
  }

  private void validate() {
    if (Boolean.TRUE.equals(enableSeparateCfg().orElse(null)) && cfgDiffComputeSeparate() && cfgComputeFirst()) {
      throw new ConfigException("cfg_compute_first = true requires cfg_diff_compute_separate = false when "
          + "enable_separate_cfg is on: the branch computed first cannot reuse the other branch's diff (SPEC 5)");
    }
    StepMask mask = stepsComputationMask();
    Integer steps = (Integer) values.get(CacheField.NUM_INFERENCE_STEPS);
    if (mask != null && steps != null) {
      if (!mask.isPolicy() && mask.length() != steps) {
        throw new ConfigException("steps_computation_mask has " + mask.length() + " steps but num_inference_steps = "
            + steps + "; they must match");
      }
      if (mask.isPolicy()) {
        mask.resolve(steps);  // rejects step counts a policy cannot serve
      }
    }
  }

  /** The algorithm. */
  public abstract CacheType cacheType();

  /** A config of the same type with these values. */
  abstract BasicCacheConfig withValues(EnumMap<CacheField, Object> newValues);

  /** This config without a force-refresh hint (after a "once" refresh, SPEC 8.4). */
  final BasicCacheConfig withoutRefreshHint() {
    EnumMap<CacheField, Object> m = new EnumMap<>(values);
    m.put(CacheField.FORCE_REFRESH_STEP_HINT, null);
    return withValues(m);
  }

  /** This config with another step count (refreshContext(transformer, numInferenceSteps)). */
  final BasicCacheConfig withNumInferenceSteps(int steps) {
    EnumMap<CacheField, Object> m = new EnumMap<>(values);
    m.put(CacheField.NUM_INFERENCE_STEPS, CacheField.NUM_INFERENCE_STEPS.check(steps));
    return withValues(m);
  }

  /** A copy with every field the overlay sets replaced (cache-dit's {@code update}). */
  public abstract BasicCacheConfig overlay(CacheConfigOverlay overlay);

  final EnumMap<CacheField, Object> overlaid(CacheConfigOverlay overlay, boolean pruneAllowed) {
    EnumMap<CacheField, Object> m = new EnumMap<>(values);
    for (Map.Entry<CacheField, Object> e : overlay.values.entrySet()) {
      if (e.getKey().pruneOnly && !pruneAllowed) {
        throw new ConfigException(e.getKey().key, e.getValue(), "applies only to DBPrune configs");
      }
      m.put(e.getKey(), e.getValue());
    }
    return m;
  }

  /**
   * Checks the config against a block list: {@code Fn + Bn} must not exceed its block count (our
   * decision; the reference would run overlapping blocks twice, SPEC 2.4).
   */
  public void validateFor(String listName, int blocks) {
    int fn = fnComputeBlocks();
    int bn = bnComputeBlocks();
    if (fn + bn > blocks) {
      throw new ConfigException("Fn_compute_blocks (" + fn + ") + Bn_compute_blocks (" + bn + ") exceeds the "
          + blocks + " blocks of " + listName + "; lower Fn or Bn (for this list with a ParamsModifier)");
    }
  }

  public int fnComputeBlocks() {
    return (Integer) values.get(CacheField.FN_COMPUTE_BLOCKS);
  }

  public int bnComputeBlocks() {
    return (Integer) values.get(CacheField.BN_COMPUTE_BLOCKS);
  }

  public double residualDiffThreshold() {
    return (Double) values.get(CacheField.RESIDUAL_DIFF_THRESHOLD);
  }

  public OptionalDouble maxAccumulatedResidualDiffThreshold() {
    Double d = (Double) values.get(CacheField.MAX_ACCUMULATED_RESIDUAL_DIFF_THRESHOLD);
    return d == null ? OptionalDouble.empty() : OptionalDouble.of(d);
  }

  public int maxWarmupSteps() {
    return (Integer) values.get(CacheField.MAX_WARMUP_STEPS);
  }

  public int warmupInterval() {
    return (Integer) values.get(CacheField.WARMUP_INTERVAL);
  }

  /** Empty = unlimited. */
  public OptionalInt maxCachedSteps() {
    int v = (Integer) values.get(CacheField.MAX_CACHED_STEPS);
    return v < 0 ? OptionalInt.empty() : OptionalInt.of(v);
  }

  /** Empty = unlimited. */
  public OptionalInt maxContinuousCachedSteps() {
    int v = (Integer) values.get(CacheField.MAX_CONTINUOUS_CACHED_STEPS);
    return v < 0 ? OptionalInt.empty() : OptionalInt.of(v);
  }

  /** Empty = decided by the adapter (SPEC 5). */
  public java.util.Optional<Boolean> enableSeparateCfg() {
    return java.util.Optional.ofNullable((Boolean) values.get(CacheField.ENABLE_SEPARATE_CFG));
  }

  public boolean cfgComputeFirst() {
    return (Boolean) values.get(CacheField.CFG_COMPUTE_FIRST);
  }

  public boolean cfgDiffComputeSeparate() {
    return (Boolean) values.get(CacheField.CFG_DIFF_COMPUTE_SEPARATE);
  }

  public OptionalInt numInferenceSteps() {
    Integer v = (Integer) values.get(CacheField.NUM_INFERENCE_STEPS);
    return v == null ? OptionalInt.empty() : OptionalInt.of(v);
  }

  /** The steps computation mask, or null. */
  public StepMask stepsComputationMask() {
    return (StepMask) values.get(CacheField.STEPS_COMPUTATION_MASK);
  }

  public StepsPolicy stepsComputationPolicy() {
    return (StepsPolicy) values.get(CacheField.STEPS_COMPUTATION_POLICY);
  }

  public OptionalInt forceRefreshStepHint() {
    Integer v = (Integer) values.get(CacheField.FORCE_REFRESH_STEP_HINT);
    return v == null ? OptionalInt.empty() : OptionalInt.of(v);
  }

  public RefreshPolicy forceRefreshStepPolicy() {
    return (RefreshPolicy) values.get(CacheField.FORCE_REFRESH_STEP_POLICY);
  }

  public BufferPrecision cacheBufferPrecision() {
    return (BufferPrecision) values.get(CacheField.CACHE_BUFFER_PRECISION);
  }

  /** The settings as config-file keys and values (nulls included), in declaration order. */
  public Map<String, Object> asMap() {
    Map<String, Object> m = new java.util.LinkedHashMap<>();
    for (Map.Entry<CacheField, Object> e : values.entrySet()) {
      if (!e.getKey().pruneOnly || cacheType() == CacheType.DBPRUNE) {
        Object v = e.getValue();
        m.put(e.getKey().key, v instanceof Enum<?> en ? en.name().toLowerCase(java.util.Locale.ROOT)
            : v instanceof StepMask sm ? sm.toString() : v);
      }
    }
    return m;
  }

  /**
   * The short tag of SPEC 3.1, e.g. {@code DBCache_F8B0_W8I1M0MC0_R0.08}; DBCache configs append
   * {@code _SCM<mask>_<policy>}, {@code _N<steps>}, {@code _FR<hint>_<policy>} and {@code _CFG<0|1>}
   * where set.
   */
  public String strify() {
    StringBuilder sb = new StringBuilder();
    sb.append(cacheType().label()).append("_F").append(fnComputeBlocks()).append('B').append(bnComputeBlocks())
        .append("_W").append(maxWarmupSteps()).append('I').append(warmupInterval())
        .append('M').append(Math.max(0, (Integer) values.get(CacheField.MAX_CACHED_STEPS)))
        .append("MC").append(Math.max(0, (Integer) values.get(CacheField.MAX_CONTINUOUS_CACHED_STEPS)))
        .append("_R").append(pythonFloat(residualDiffThreshold()));
    if (cacheType() == CacheType.DBCACHE) {
      StepMask mask = stepsComputationMask();
      if (mask != null) {
        String digits = mask.toString();
        if (mask.isPolicy() && numInferenceSteps().isPresent()) {
          StringBuilder d = new StringBuilder();
          for (int b : mask.resolve(numInferenceSteps().getAsInt())) {
            d.append(b);
          }
          digits = d.toString();
        }
        sb.append("_SCM").append(digits).append('_')
            .append(stepsComputationPolicy().name().toLowerCase(java.util.Locale.ROOT));
      }
      numInferenceSteps().ifPresent(n -> sb.append("_N").append(n));
      forceRefreshStepHint().ifPresent(h -> sb.append("_FR").append(h).append('_')
          .append(forceRefreshStepPolicy().name().toLowerCase(java.util.Locale.ROOT)));
      enableSeparateCfg().ifPresent(s -> sb.append("_CFG").append(s ? 1 : 0));
    }
    return sb.toString();
  }

  /** Python's {@code str(float)}: 0.08 -> "0.08", 1.0 -> "1.0", 1e-05 -> "1e-05". */
  static String pythonFloat(double d) {
    double a = Math.abs(d);
    if (d == 0 || (a >= 1e-4 && a < 1e16)) {
      String s = new BigDecimal(Double.toString(d)).stripTrailingZeros().toPlainString();
      return s.contains(".") ? s : s + ".0";
    }
    String s = String.format(java.util.Locale.ROOT, "%.16e", d);
    String mantissa = new BigDecimal(s.substring(0, s.indexOf('e'))).stripTrailingZeros().toPlainString();
    int exp = Integer.parseInt(s.substring(s.indexOf('e') + 1));
    return mantissa + "e" + (exp < 0 ? "-" : "+") + String.format(java.util.Locale.ROOT, "%02d", Math.abs(exp));
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof BasicCacheConfig c && c.cacheType() == cacheType() && c.values.equals(values);
  }

  @Override
  public int hashCode() {
    return values.hashCode() * 31 + cacheType().hashCode();
  }

  @Override
  public String toString() {
    return strify();
  }

  static List<Integer> ids(Object v) {
    @SuppressWarnings("unchecked")
    List<Integer> ids = (List<Integer>) v;
    return ids;
  }
}
