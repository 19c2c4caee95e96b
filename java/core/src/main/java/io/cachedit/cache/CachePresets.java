package io.cachedit.cache;

import io.cachedit.error.ConfigException;
import java.util.List;
import java.util.Locale;
import java.util.Optional;

/**
 * Named cache settings, as the command line's {@code --cache} and the server's {@code cache} field
 * take them. {@code dbcache*} are DBCache with one front block as the probe (F1B0) and a short
 * warm-up; {@code taylorseer} adds a first-order TaylorSeer calibrator; {@code scm-*} add cache-dit's
 * steps computation masks (slow ... ultra: more and more steps cached by schedule, dynamic policy) on
 * top of TaylorSeer; {@code quadratic-N} computes exactly N steps placed by our {@code quadratic:N}
 * mask (static policy) and extrapolates the rest with TaylorSeer; {@code dbprune} prunes individual
 * blocks; {@code none} is no caching. Thresholds were chosen with {@code cachedit bench} on the
 * bundled model (docs/bench/bench.md); other models may want others.
 */
public final class CachePresets {
  private CachePresets() {}

  /** Every preset name, {@code none} first. */
  public static final List<String> NAMES = List.of("none", "dbcache", "dbcache-fast", "taylorseer", "scm-slow",
      "scm-medium", "scm-fast", "scm-ultra", "quadratic-12", "quadratic-9", "quadratic-7", "dbprune");

  /** Whether {@code name} is the preset that turns caching off. */
  public static boolean isNone(String name) {
    return name != null && "none".equals(name.trim().toLowerCase(Locale.ROOT));
  }

  /**
   * The options of the preset {@code name}, empty for {@code none}.
   *
   * @throws ConfigException naming the preset and listing {@link #NAMES} for an unknown name
   */
  public static Optional<CacheOptions> get(String name) {
    String n = name == null ? "" : name.trim().toLowerCase(Locale.ROOT);
    return Optional.ofNullable(switch (n) {
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
      default -> throw new ConfigException("cache", name, "unknown cache preset; use one of " + NAMES
          + " or a cache config file");
    });
  }

  /** The options of a preset that caches; {@code none} and unknown names are errors naming the preset. */
  public static CacheOptions require(String name) {
    return get(name).orElseThrow(() -> new ConfigException("cache", name,
        "turns caching off; choose one of " + NAMES.subList(1, NAMES.size())));
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
