package io.cachedit.cache;

import org.bytedeco.pytorch.Tensor;

/**
 * Combines the residual-diff sums of all ranks of a parallel group before the threshold test, so every
 * rank takes the same cache decision (docs/algorithms.md section 3.5). The engine hands it this rank's
 * sums as a float64 tensor {@code [sum|prev - cur|, sum|prev|]} on the probe's device; the reducer
 * replaces them in place by the group's (an all-reduce with SUM, or AVG: the ratio is the same) without
 * synchronising with the host. The engine then reads the two numbers once, divides and decides: one
 * collective and one host sync per decision.
 *
 * <p>Single-process runs use {@link #LOCAL}, for which the engine skips the tensor altogether.
 */
@FunctionalInterface
public interface DiffReducer {
  /** Replaces {@code sums} (float64, 2 elements, on the probe's device) by the group's sums, in place. */
  void reduce(Tensor sums);

  /** No group: the local sums decide. */
  DiffReducer LOCAL = new DiffReducer() {
    @Override
    public void reduce(Tensor sums) {}

    @Override
    public String toString() {
      return "LOCAL";
    }
  };
}
