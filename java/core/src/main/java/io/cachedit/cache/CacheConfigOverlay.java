package io.cachedit.cache;

import io.cachedit.error.ConfigException;
import java.util.EnumSet;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A sparse set of cache settings: only the fields set here override a base config. Built with
 * {@link DBCacheConfig#reset()} and carried by a {@link ParamsModifier}. Immutable.
 */
public final class CacheConfigOverlay {
  private final Builder values;  // a private snapshot, never handed out

  private CacheConfigOverlay(Builder source) {
    this.values = new Builder().copySetFields(source);
  }

  public static Builder builder() {
    return new Builder();
  }

  public boolean isEmpty() {
    return values.set.isEmpty();
  }

  /** The fields set, as config-file keys and values. */
  public Map<String, Object> asMap() {
    Map<String, Object> m = new LinkedHashMap<>();
    for (CacheField f : values.set) {
      m.put(f.key, f.reader.read(values));
    }
    return m;
  }

  /** Applies the set fields to a builder of the base config. */
  <B extends Settings<B>> B applyTo(B base) {
    return base.copySetFields(values);
  }

  /** Rejects DBPrune-only fields (the base is a DBCache config). */
  void requireNoPruneFields() {
    for (CacheField f : values.set) {
      if (f.pruneOnly) {
        throw new ConfigException(f.key, f.reader.read(values), "applies only to DBPrune configs");
      }
    }
  }

  EnumSet<CacheField> fields() {
    return EnumSet.copyOf(values.set.isEmpty() ? EnumSet.noneOf(CacheField.class) : values.set);
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof CacheConfigOverlay other && other.asMap().equals(asMap());
  }

  @Override
  public int hashCode() {
    return asMap().hashCode();
  }

  @Override
  public String toString() {
    return asMap().toString();
  }

  /** Builder: every setter marks its field as overriding. */
  public static final class Builder extends Settings.Prune<Builder> {
    Builder() {}

    public CacheConfigOverlay build() {
      return new CacheConfigOverlay(this);
    }
  }
}
