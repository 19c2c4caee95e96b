package io.cachedit.cache;

/** The caching algorithm of a config. */
public enum CacheType {
  /** Dual Block Cache: Fn probe blocks, cached middle residual, Bn corrector blocks (docs/algorithms.md section 3). */
  DBCACHE("DBCache"),
  /** Dynamic Block Prune: skips individual blocks whose input barely changed (docs/algorithms.md section 4). */
  DBPRUNE("DBPrune");

  private final String label;

  CacheType(String label) {
    this.label = label;
  }

  /** The reference's name, as used in tags and config files. */
  public String label() {
    return label;
  }
}
