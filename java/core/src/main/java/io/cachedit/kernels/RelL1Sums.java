package io.cachedit.kernels;

/**
 * The two sums of the relative L1 difference (SPEC 3.5): {@code sumAbsDiff = sum|prev - cur|} and
 * {@code sumAbsPrev = sum|prev|}. Ranks all-reduce both before dividing, so every rank decides alike.
 *
 * @param sumAbsDiff sum of absolute differences
 * @param sumAbsPrev sum of absolute values of the previous tensor
 * @param count number of elements summed
 */
public record RelL1Sums(double sumAbsDiff, double sumAbsPrev, long count) {
  /** {@code sumAbsDiff / sumAbsPrev}; 0 when both are 0 (identical zero tensors), +inf when only the denominator is. */
  public double ratio() {
    if (sumAbsPrev == 0.0) {
      return sumAbsDiff == 0.0 ? 0.0 : (Double.isNaN(sumAbsDiff) ? sumAbsDiff : Double.POSITIVE_INFINITY);
    }
    return sumAbsDiff / sumAbsPrev;
  }
}
