package io.cachedit.kernels;

import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * The two sums of the relative L1 difference (docs/algorithms.md section 3.5): {@code sumAbsDiff = sum|prev - cur|} and
 * {@code sumAbsPrev = sum|prev|}. Ranks all-reduce both before dividing, so every rank decides alike.
 *
 * @param sumAbsDiff sum of absolute differences
 * @param sumAbsPrev sum of absolute values of the previous tensor
 * @param count number of elements summed
 */
public record RelL1Sums(double sumAbsDiff, double sumAbsPrev, long count) {
  /**
   * Reads a float64 sums tensor {@code [sum|prev-cur|, sum|prev|]} (as {@link Kernels#relL1SumsTensor}
   * makes it), copying it to the host if it lives on a GPU: the one host synchronisation of a decision.
   */
  public static RelL1Sums read(Tensor sums, long count) {
    if (sums.numel() != 2 || sums.scalar_type().intern() != ScalarType.Double) {
      throw new IllegalArgumentException("sums must be a float64 tensor of 2 elements, got "
          + java.util.Arrays.toString(sums.sizes().vec().get()) + " " + sums.scalar_type());
    }
    Tensor host = sums.is_cuda() ? sums.cpu() : sums.contiguous();
    return new RelL1Sums(host.data_ptr_double().get(0), host.data_ptr_double().get(1), count);
  }

  /** {@code sumAbsDiff / sumAbsPrev}; 0 when both are 0 (identical zero tensors), +inf when only the denominator is. */
  public double ratio() {
    if (sumAbsPrev == 0.0) {
      return sumAbsDiff == 0.0 ? 0.0 : (Double.isNaN(sumAbsDiff) ? sumAbsDiff : Double.POSITIVE_INFINITY);
    }
    return sumAbsDiff / sumAbsPrev;
  }
}
