package io.cachedit.parallel;

import java.util.EnumMap;
import java.util.Map;
import java.util.concurrent.atomic.LongAdder;

/**
 * Bytes this rank has sent in Ulysses exchanges, per tensor: what the FP8 wire formats save is
 * counted, not estimated (docs/parallelism.md). Counts from concurrent exchanges of one group may
 * mix between kinds; totals are exact.
 */
public final class WireBytes {
  /** The tensors a Ulysses attention exchanges. */
  public enum Kind {
    Q,
    K,
    V,
    O
  }

  private final Map<Kind, LongAdder> bytes = new EnumMap<>(Kind.class);

  WireBytes() {
    for (Kind k : Kind.values()) {
      bytes.put(k, new LongAdder());
    }
  }

  void add(Kind kind, long n) {
    bytes.get(kind).add(n);
  }

  /** Bytes sent for {@code kind} so far. */
  public long get(Kind kind) {
    return bytes.get(kind).sum();
  }

  /** Bytes sent for all kinds so far. */
  public long total() {
    long t = 0;
    for (Kind k : Kind.values()) {
      t += get(k);
    }
    return t;
  }

  @Override
  public String toString() {
    return "WireBytes[Q " + get(Kind.Q) + ", K " + get(Kind.K) + ", V " + get(Kind.V) + ", O " + get(Kind.O) + "]";
  }
}
