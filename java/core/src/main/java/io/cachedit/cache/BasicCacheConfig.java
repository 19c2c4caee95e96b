package io.cachedit.cache;

import io.cachedit.error.ConfigException;
import java.math.BigDecimal;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalDouble;
import java.util.OptionalInt;

/**
 * The settings {@link DBCacheConfig} and {@link DBPruneConfig} share (docs/algorithms.md section 3.1),
 * as immutable records: every value is checked when built, with messages that name the config-file
 * key. Defaults are the reference's: F8B0, 8 warm-up steps, interval 1, unlimited cached steps,
 * threshold 0.08 ({@code DBCache_F8B0_W8I1M0MC0_R0.08}).
 */
public sealed interface BasicCacheConfig permits DBCacheConfig, DBPruneConfig {
  /** The algorithm. */
  CacheType cacheType();

  /** First blocks, always computed: the diff probe (>= 1). */
  int fnComputeBlocks();

  /** Last blocks, always computed on the approximated input. */
  int bnComputeBlocks();

  /** A call is cached when its diff is below this; 0 never caches, {@code >= 1} always. */
  double residualDiffThreshold();

  /** Caching stops once the branch's recorded diffs sum to this; empty = no limit. */
  OptionalDouble maxAccumulatedResidualDiffThreshold();

  /** Steps {@code 0..W-1} (every {@link #warmupInterval()}-th of them) always compute. */
  int maxWarmupSteps();

  int warmupInterval();

  /** Cached steps per branch; empty = unlimited. */
  OptionalInt maxCachedSteps();

  /** Longest run of consecutive cached steps; empty = unlimited. */
  OptionalInt maxContinuousCachedSteps();

  /** Separate state for the cond and uncond calls; empty = decided by the adapter. */
  Optional<Boolean> enableSeparateCfg();

  boolean cfgComputeFirst();

  boolean cfgDiffComputeSeparate();

  /** Steps per generation (transformer-only use); empty = unset. */
  OptionalInt numInferenceSteps();

  Optional<StepMask> stepsComputationMask();

  StepsPolicy stepsComputationPolicy();

  /** The transformer call (0-based) at which the context refreshes; empty = never. */
  OptionalInt forceRefreshStepHint();

  RefreshPolicy forceRefreshStepPolicy();

  /** Precision of held residuals; empty = the engine's default (full precision unless set there). */
  Optional<BufferPrecision> cacheBufferPrecision();

  /** A builder holding this config's values. */
  Settings<?> toBuilder();

  /** A copy with every field the overlay sets replaced (cache-dit's {@code update}). */
  BasicCacheConfig overlay(CacheConfigOverlay overlay);

  /** This config with another step count (as {@code refreshContext(transformer, numInferenceSteps)}). */
  BasicCacheConfig withNumInferenceSteps(int steps);

  /** This config without a force-refresh hint (what a {@code once} refresh leaves). */
  BasicCacheConfig withoutForceRefreshStepHint();

  /**
   * Checks the config against a block list: {@code Fn + Bn} must not exceed its block count (our
   * decision; the reference would run overlapping blocks twice).
   */
  default void validateFor(String listName, int blocks) {
    int fn = fnComputeBlocks();
    int bn = bnComputeBlocks();
    if (fn + bn > blocks) {
      throw new ConfigException("Fn_compute_blocks (" + fn + ") + Bn_compute_blocks (" + bn + ") exceeds the "
          + blocks + " blocks of " + listName + "; lower Fn or Bn (for this list with a ParamsModifier)");
    }
  }

  /** The settings as config-file keys and values (unset ones as null, unlimited as -1), in table order. */
  default Map<String, Object> asMap() {
    Settings<?> s = toBuilder();
    Map<String, Object> m = new LinkedHashMap<>();
    for (CacheField f : CacheField.values()) {
      if (!f.pruneOnly || cacheType() == CacheType.DBPRUNE) {
        m.put(f.key, f.reader.read(s));
      }
    }
    return m;
  }

  /**
   * The short tag, e.g. {@code DBCache_F8B0_W8I1M0MC0_R0.08}; DBCache configs append
   * {@code _SCM<mask>_<policy>}, {@code _N<steps>}, {@code _FR<hint>_<policy>} and {@code _CFG<0|1>}
   * where set.
   */
  default String strify() {
    StringBuilder sb = new StringBuilder();
    sb.append(cacheType().label()).append("_F").append(fnComputeBlocks()).append('B').append(bnComputeBlocks())
        .append("_W").append(maxWarmupSteps()).append('I').append(warmupInterval())
        .append('M').append(maxCachedSteps().orElse(0))
        .append("MC").append(maxContinuousCachedSteps().orElse(0))
        .append("_R").append(pythonFloat(residualDiffThreshold()));
    if (cacheType() == CacheType.DBCACHE) {
      stepsComputationMask().ifPresent(mask -> {
        String digits = mask.toString();
        if (mask.isPolicy() && numInferenceSteps().isPresent()) {
          StringBuilder d = new StringBuilder();
          for (int b : mask.resolve(numInferenceSteps().getAsInt())) {
            d.append(b);
          }
          digits = d.toString();
        }
        sb.append("_SCM").append(digits).append('_')
            .append(stepsComputationPolicy().name().toLowerCase(Locale.ROOT));
      });
      numInferenceSteps().ifPresent(n -> sb.append("_N").append(n));
      forceRefreshStepHint().ifPresent(h -> sb.append("_FR").append(h).append('_')
          .append(forceRefreshStepPolicy().name().toLowerCase(Locale.ROOT)));
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
    String s = String.format(Locale.ROOT, "%.16e", d);
    String mantissa = new BigDecimal(s.substring(0, s.indexOf('e'))).stripTrailingZeros().toPlainString();
    int exp = Integer.parseInt(s.substring(s.indexOf('e') + 1));
    return mantissa + "e" + (exp < 0 ? "-" : "+") + String.format(Locale.ROOT, "%02d", Math.abs(exp));
  }
}
