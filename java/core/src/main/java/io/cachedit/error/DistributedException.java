package io.cachedit.error;

import java.util.OptionalInt;

/**
 * A parallel group cannot do what was asked: a rank failed or timed out, the ranks disagree, or the
 * environment does not describe a usable group. Names the rank where it is known.
 */
public class DistributedException extends CacheDitException {
  private static final long serialVersionUID = 1L;
  private final int rank;

  public DistributedException(String message) {
    this(-1, message, null);
  }

  /** An error about {@code rank} ({@code -1}: no particular rank). */
  public DistributedException(int rank, String message, Throwable cause) {
    super(message, cause);
    this.rank = rank;
  }

  /** The rank the error is about, if one. */
  public OptionalInt rank() {
    return rank < 0 ? OptionalInt.empty() : OptionalInt.of(rank);
  }
}
