package io.cachedit.parallel;

import io.cachedit.error.ConfigException;
import java.util.Locale;

/** Which engine runs a {@link ParallelismConfig} (the reference's names). */
public enum ParallelismBackend {
  /** Chosen from the sizes: context parallelism alone is {@link #CACHE_DIT}. */
  AUTO,
  /** Context parallelism (Ulysses, ring, USP) by cachedit's attention and sequence sharding. */
  CACHE_DIT,
  /** Tensor parallelism alone. */
  NATIVE_PYTORCH,
  /** Context and tensor parallelism together. */
  NATIVE_HYBRID,
  /** No parallelism. */
  NONE;

  /** The backend named {@code name} (any case; {@code native_diffuser} is the reference's old name of CACHE_DIT). */
  public static ParallelismBackend parse(String name) {
    String n = name == null ? "" : name.trim().toUpperCase(Locale.ROOT);
    if (n.equals("NATIVE_DIFFUSER")) {
      return CACHE_DIT;
    }
    for (ParallelismBackend b : values()) {
      if (b.name().equals(n)) {
        return b;
      }
    }
    throw new ConfigException("backend", name, "must be one of auto, cache_dit, native_pytorch, native_hybrid, none");
  }
}
