package io.cachedit.cache;

import java.util.Optional;

/**
 * Per-block-list overrides (docs/algorithms.md section 8.3): a sparse cache overlay (only the fields
 * set on it replace the base config's) and/or a calibrator config that replaces the base calibrator
 * for that list.
 *
 * <p>Modifiers without a list name are matched to the cached block lists in order, transformer by
 * transformer, and there must be exactly one per cached list. A named modifier ({@link #forList})
 * applies to every cached list of that name; named and unnamed modifiers cannot be mixed. Either way
 * a mismatch is an error that lists the cached lists.
 *
 * <pre>{@code
 * ParamsModifier single = ParamsModifier.of(DBCacheConfig.reset().residualDiffThreshold(0.16))
 *     .forList("single_transformer_blocks");
 * }</pre>
 *
 * Unlike the reference, a modifier that carries only a calibrator config is applied too.
 *
 * @param cacheOverlay the fields to override (empty: none)
 * @param calibratorConfig the calibrator of the list, or null to keep the base's
 * @param listName the block list it applies to, or null for positional matching
 */
public record ParamsModifier(CacheConfigOverlay cacheOverlay, CalibratorConfig calibratorConfig, String listName) {
  public ParamsModifier {
    if (cacheOverlay == null) {
      cacheOverlay = CacheConfigOverlay.builder().build();
    }
    if (listName != null && listName.isBlank()) {
      throw new IllegalArgumentException("a ParamsModifier's list name must not be blank (null for positional)");
    }
  }

  public ParamsModifier(CacheConfigOverlay cacheOverlay, CalibratorConfig calibratorConfig) {
    this(cacheOverlay, calibratorConfig, null);
  }

  public static ParamsModifier of(CacheConfigOverlay.Builder overlay) {
    return new ParamsModifier(overlay.build(), null);
  }

  public static ParamsModifier of(CacheConfigOverlay overlay) {
    return new ParamsModifier(overlay, null);
  }

  public static ParamsModifier of(CacheConfigOverlay.Builder overlay, CalibratorConfig calibrator) {
    return new ParamsModifier(overlay.build(), calibrator);
  }

  public static ParamsModifier of(CalibratorConfig calibrator) {
    return new ParamsModifier(null, calibrator);
  }

  /** This modifier for the block list named {@code name} (e.g. {@code single_transformer_blocks}). */
  public ParamsModifier forList(String name) {
    return new ParamsModifier(cacheOverlay, calibratorConfig, name);
  }

  public Optional<String> list() {
    return Optional.ofNullable(listName);
  }

  /** The base config with this modifier's overlay applied. */
  public BasicCacheConfig applyTo(BasicCacheConfig base) {
    return cacheOverlay.isEmpty() ? base : base.overlay(cacheOverlay);
  }

  /** This modifier's calibrator if it has one, else the base's (which may be null). */
  public CalibratorConfig applyTo(CalibratorConfig base) {
    return calibratorConfig != null ? calibratorConfig : base;
  }
}
