package io.cachedit.cache;

/**
 * Per-block-list overrides (SPEC 8.5): a sparse cache overlay (only the fields set on it replace the
 * base config's) and/or a calibrator config that replaces the base calibrator for that list.
 * Modifiers are matched to block lists in order, transformer by transformer.
 *
 * <pre>{@code
 * ParamsModifier forSingleBlocks = ParamsModifier.of(DBCacheConfig.reset().residualDiffThreshold(0.16));
 * }</pre>
 *
 * Unlike the reference, a modifier that carries only a calibrator config is applied too.
 */
public record ParamsModifier(CacheConfigOverlay cacheOverlay, CalibratorConfig calibratorConfig) {
  public ParamsModifier {
    if (cacheOverlay == null) {
      cacheOverlay = CacheConfigOverlay.builder().build();
    }
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

  /** The base config with this modifier's overlay applied. */
  public BasicCacheConfig applyTo(BasicCacheConfig base) {
    return cacheOverlay.isEmpty() ? base : base.overlay(cacheOverlay);
  }

  /** This modifier's calibrator if it has one, else the base's (which may be null). */
  public CalibratorConfig applyTo(CalibratorConfig base) {
    return calibratorConfig != null ? calibratorConfig : base;
  }
}
