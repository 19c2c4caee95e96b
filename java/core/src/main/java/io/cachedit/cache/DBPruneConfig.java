package io.cachedit.cache;

import java.util.List;
import java.util.OptionalDouble;

/**
 * Dynamic Block Prune settings (SPEC 4): each block (outside the first Fn, last Bn and
 * {@code nonPruneBlockIds}) is skipped, its cached residual reused, when its input differs from its
 * input at the last step it ran by less than the threshold.
 */
public final class DBPruneConfig extends BasicCacheConfig {
  DBPruneConfig(java.util.EnumMap<CacheField, Object> settings) {
    super(settings);
  }

  public static Builder builder() {
    return new Builder();
  }

  public Builder toBuilder() {
    Builder b = new Builder();
    b.values.putAll(values);
    return b;
  }

  @Override
  DBPruneConfig withValues(java.util.EnumMap<CacheField, Object> newValues) {
    return new DBPruneConfig(newValues);
  }

  @Override
  public CacheType cacheType() {
    return CacheType.DBPRUNE;
  }

  @Override
  public DBPruneConfig overlay(CacheConfigOverlay overlay) {
    return new DBPruneConfig(overlaid(overlay, true));
  }

  public boolean enableDynamicPruneThreshold() {
    return (Boolean) values.get(CacheField.ENABLE_DYNAMIC_PRUNE_THRESHOLD);
  }

  /** Empty = 2 x residualDiffThreshold. */
  public OptionalDouble maxDynamicPruneThreshold() {
    Double d = (Double) values.get(CacheField.MAX_DYNAMIC_PRUNE_THRESHOLD);
    return d == null ? OptionalDouble.empty() : OptionalDouble.of(d);
  }

  public double dynamicPruneThresholdRelaxRatio() {
    return (Double) values.get(CacheField.DYNAMIC_PRUNE_THRESHOLD_RELAX_RATIO);
  }

  public List<Integer> nonPruneBlockIds() {
    return ids(values.get(CacheField.NON_PRUNE_BLOCK_IDS));
  }

  /** Builder with the reference defaults (those of DBCache plus the prune settings). */
  public static final class Builder extends Settings.Prune<Builder> {
    Builder() {}

    public DBPruneConfig build() {
      return new DBPruneConfig(values);
    }
  }
}
