package io.cachedit.io;

import java.util.Arrays;

/**
 * Which part of each checkpoint tensor this process keeps (tensor parallelism): consulted by
 * {@link WeightScope} for every parameter, so that a process only ever copies its own shard out of a
 * memory-mapped file. {@link #NONE} keeps every tensor whole.
 */
public interface WeightSharding {
  /**
   * The part of tensor {@code key} (checkpoint shape {@code shape}) this process keeps, or null to keep
   * it whole.
   */
  Slice slice(String key, long[] shape);

  /** Keeps every tensor whole. */
  WeightSharding NONE = (key, shape) -> null;

  /**
   * Pieces {@code [starts[i], starts[i] + lengths[i])} of dimension {@code dim}, concatenated in order.
   * One piece is a plain contiguous shard; several let a shard follow a tensor made of concatenated
   * parts (FLUX's single-block {@code proj_out} input is {@code [attention ‖ mlp]}: each process keeps
   * its share of both).
   */
  record Slice(int dim, long[] starts, long[] lengths) {
    public Slice {
      if (starts.length == 0 || starts.length != lengths.length) {
        throw new IllegalArgumentException("a slice needs as many starts as lengths, at least one");
      }
      starts = starts.clone();
      lengths = lengths.clone();
    }

    /** The slice's length along {@link #dim}. */
    public long length() {
      long n = 0;
      for (long l : lengths) {
        n += l;
      }
      return n;
    }

    /** {@code shape} with {@link #dim} replaced by this slice's length. */
    public long[] apply(long[] shape) {
      long[] s = shape.clone();
      s[dim] = length();
      return s;
    }

    @Override
    public String toString() {
      return "dim " + dim + " starts " + Arrays.toString(starts) + " lengths " + Arrays.toString(lengths);
    }
  }
}
