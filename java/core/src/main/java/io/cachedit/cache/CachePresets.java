package io.cachedit.cache;

import java.util.List;
import java.util.Locale;

/**
 * Named cache settings for the command line and benchmarks. {@code dbcache*} are DBCache with one
 * front block as the probe (F1B0) and a short warm-up; {@code taylorseer} adds a first-order
 * TaylorSeer calibrator; {@code scm-*} add cache-dit's steps computation masks (slow ... ultra: more
 * and more steps cached by schedule, dynamic policy) on top of TaylorSeer; {@code quadratic-N}
 * computes exactly N steps placed by our {@code quadratic:N} mask (static policy) and extrapolates the
 * rest with TaylorSeer; {@code dbprune} prunes individual blocks. Thresholds were chosen with
 * {@code cachedit bench} on the bundled model (docs/bench/bench.md); other models may want others.
 */
public final class CachePresets {
  private CachePresets() {}

  public static final List<String> NAMES = List.of("none", "dbcache", "dbcache-fast", "taylorseer", "scm-slow",
      "scm-medium", "scm-fast", "scm-ultra", "quadratic-12", "quadratic-9", "quadratic-7", "dbprune");

  /** The options of {@code name}, or null for {@code none}. */
  public static CacheOptions get(String name) {
    String n = name == null ? "" : name.trim().toLowerCase(Locale.ROOT);
    return switch (n) {
      case "none" -> null;
      case "dbcache" -> CacheOptions.of(dbcache(0.12, 3));
      case "dbcache-fast" -> CacheOptions.of(dbcache(0.24, 5));
      case "taylorseer" -> CacheOptions.of(dbcache(0.24, 5), TaylorSeerCalibratorConfig.ofOrder(1));
      case "scm-slow", "scm-medium", "scm-fast", "scm-ultra" -> CacheOptions.of(
          DBCacheConfig.builder().fnComputeBlocks(1).bnComputeBlocks(0).maxWarmupSteps(4).warmupInterval(1)
              .residualDiffThreshold(0.3).maxContinuousCachedSteps(-1)
              .stepsComputationMask(StepMask.policy(n.substring(4))).stepsComputationPolicy(StepsPolicy.DYNAMIC)
              .build(),
          TaylorSeerCalibratorConfig.ofOrder(1));
      case "quadratic-12" -> quadratic(12, 2);
      case "quadratic-9" -> quadratic(9, 1);
      case "quadratic-7" -> quadratic(7, 1);
      case "dbprune" -> CacheOptions.of(DBPruneConfig.builder().fnComputeBlocks(1).bnComputeBlocks(0).maxWarmupSteps(4)
          .residualDiffThreshold(0.08).maxContinuousCachedSteps(-1).build());
      default -> throw new IllegalArgumentException("unknown cache preset \"" + name + "\"; use one of " + NAMES
          + " or --cache-config FILE");
    };
  }

  /**
   * Exactly {@code computedSteps} computed steps, the rest cached unconditionally (static policy) and
   * extrapolated by TaylorSeer of {@code order}; the mask owns the schedule, so no warm-up or limits.
   */
  public static CacheOptions quadratic(int computedSteps, int order) {
    return CacheOptions.of(DBCacheConfig.builder().fnComputeBlocks(1).bnComputeBlocks(0).maxWarmupSteps(0)
        .warmupInterval(1).residualDiffThreshold(0.3).maxContinuousCachedSteps(-1)
        .stepsComputationMask(StepMask.policy("quadratic:" + computedSteps)).stepsComputationPolicy(StepsPolicy.STATIC)
        .build(), TaylorSeerCalibratorConfig.ofOrder(order));
  }

  private static DBCacheConfig dbcache(double threshold, int maxContinuous) {
    return DBCacheConfig.builder().fnComputeBlocks(1).bnComputeBlocks(0).maxWarmupSteps(4).warmupInterval(1)
        .residualDiffThreshold(threshold).maxContinuousCachedSteps(maxContinuous).build();
  }
}
