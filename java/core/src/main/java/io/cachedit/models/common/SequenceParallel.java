package io.cachedit.models.common;

import org.bytedeco.pytorch.Tensor;

/**
 * How a model instance shares its token sequence with the other ranks of a context-parallel group: a
 * strategy object, like its {@link AttentionBackend}. At the points its {@link ContextParallelPlan}
 * names, the model hands a full tensor to {@link #split} and keeps this rank's contiguous part
 * (the first {@code S mod P} ranks one token more, as {@code torch.tensor_split}), and hands its part
 * of a result to {@link #gather} to get the whole back. {@link #NONE}, the default, is one rank.
 */
public interface SequenceParallel {
  /** Whether this instance runs split across ranks. */
  boolean active();

  /** Number of ranks the sequence is split over. */
  int parts();

  /** This rank's index among them. */
  int index();

  /** This rank's part of {@code full} along {@code dim}. */
  Tensor split(Tensor full, int dim);

  /**
   * The whole tensor from every rank's part along {@code dim}, in rank order; {@code fullLength} is
   * the length the parts were split from, so each rank knows every part's length.
   */
  Tensor gather(Tensor part, int dim, long fullLength);

  /**
   * Sums {@code t} in place over the ranks that share the sequence (the cache engine's diff sums, so
   * every rank decides alike).
   */
  void allReduceSum(Tensor t);

  /** One rank: split and gather return their input. */
  SequenceParallel NONE = new SequenceParallel() {
    @Override
    public boolean active() {
      return false;
    }

    @Override
    public int parts() {
      return 1;
    }

    @Override
    public int index() {
      return 0;
    }

    @Override
    public Tensor split(Tensor full, int dim) {
      return full;
    }

    @Override
    public Tensor gather(Tensor part, int dim, long fullLength) {
      return part;
    }

    @Override
    public void allReduceSum(Tensor t) {}

    @Override
    public String toString() {
      return "NONE";
    }
  };

  /** The length of part {@code index} when {@code length} tokens split into {@code parts} (tensor_split). */
  static long partLength(long length, int parts, int index) {
    return length / parts + (index < length % parts ? 1 : 0);
  }

  /** Where part {@code index} starts. */
  static long partStart(long length, int parts, int index) {
    long base = length / parts;
    long extra = length % parts;
    return index * base + Math.min(index, extra);
  }
}
