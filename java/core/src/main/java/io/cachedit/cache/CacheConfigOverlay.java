package io.cachedit.cache;

import java.util.EnumMap;
import java.util.Map;

/**
 * A sparse set of cache settings: only the fields set here override a base config. Built with
 * {@link DBCacheConfig#reset()} and carried by a {@link ParamsModifier}.
 */
public final class CacheConfigOverlay {
  final EnumMap<CacheField, Object> values;

  private CacheConfigOverlay(EnumMap<CacheField, Object> values) {
    this.values = new EnumMap<>(values);
  }

  public static Builder builder() {
    return new Builder();
  }

  public boolean isEmpty() {
    return values.isEmpty();
  }

  /** The fields set, as config-file keys. */
  public Map<String, Object> asMap() {
    Map<String, Object> m = new java.util.LinkedHashMap<>();
    values.forEach((k, v) -> m.put(k.key, v));
    return m;
  }

  @Override
  public String toString() {
    return asMap().toString();
  }

  /** Builder: every setter marks its field as overriding. */
  public static final class Builder extends Settings.Prune<Builder> {
    Builder() {}

    public CacheConfigOverlay build() {
      return new CacheConfigOverlay(values);
    }
  }
}
