package io.cachedit.cache;

/**
 * Dual Block Cache settings (SPEC 3): compute the first {@code Fn} blocks, compare their output
 * residual with the last computed step's, and if the relative L1 difference is below the threshold
 * reuse the middle blocks' cached residual, then compute the last {@code Bn} blocks.
 *
 * <pre>{@code
 * DBCacheConfig config = DBCacheConfig.builder().fnComputeBlocks(1).residualDiffThreshold(0.12)
 *     .maxContinuousCachedSteps(3).build();   // DBCache_F1B0_W8I1M0MC3_R0.12
 * }</pre>
 */
public final class DBCacheConfig extends BasicCacheConfig {
  DBCacheConfig(java.util.EnumMap<CacheField, Object> settings) {
    super(settings);
  }

  /** The reference defaults: F8B0, W8, I1, unlimited, threshold 0.08. */
  public static DBCacheConfig defaults() {
    return builder().build();
  }

  public static Builder builder() {
    return new Builder();
  }

  /**
   * A sparse overlay for a {@link ParamsModifier}: only the fields set on it override the base
   * config (cache-dit's {@code DBCacheConfig().reset(...)}).
   */
  public static CacheConfigOverlay.Builder reset() {
    return CacheConfigOverlay.builder();
  }

  public Builder toBuilder() {
    Builder b = new Builder();
    b.values.putAll(values);
    return b;
  }

  @Override
  DBCacheConfig withValues(java.util.EnumMap<CacheField, Object> newValues) {
    return new DBCacheConfig(newValues);
  }

  @Override
  public CacheType cacheType() {
    return CacheType.DBCACHE;
  }

  @Override
  public DBCacheConfig overlay(CacheConfigOverlay overlay) {
    return new DBCacheConfig(overlaid(overlay, false));
  }

  /** Builder with the reference defaults. */
  public static final class Builder extends Settings<Builder> {
    Builder() {}

    public DBCacheConfig build() {
      return new DBCacheConfig(values);
    }
  }
}
