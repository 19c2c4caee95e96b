package io.cachedit.metrics;

import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.T_TensorTensor_T;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * Frechet distance between Gaussian fits of two feature sets:
 * {@code |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))}, in float64, with the matrix square root
 * through the symmetric form {@code tr((S1^(1/2) S2 S1^(1/2))^(1/2))} (eigenvalues clamped at 0).
 * Covariances use n - 1, as numpy's {@code cov}.
 */
public final class FrechetDistance {
  private FrechetDistance() {}

  /** Features [N, D] of each set, N >= 2 on both sides. */
  public static double compute(Tensor features1, Tensor features2) {
    if (features1.size(0) < 2 || features2.size(0) < 2) {
      throw new IllegalArgumentException("the Frechet distance needs at least 2 images per side, got "
          + features1.size(0) + " and " + features2.size(0));
    }
    Tensor f1 = features1.to(ScalarType.Double);
    Tensor f2 = features2.to(ScalarType.Double);
    Tensor mu1 = f1.mean(new long[] {0}, false, new org.bytedeco.pytorch.ScalarTypeOptional());
    Tensor mu2 = f2.mean(new long[] {0}, false, new org.bytedeco.pytorch.ScalarTypeOptional());
    Tensor s1 = torch.cov(f1.t());
    Tensor s2 = torch.cov(f2.t());
    Tensor sqrtS1 = psdSqrt(s1);
    Tensor inner = sqrtS1.matmul(s2).matmul(sqrtS1);
    inner = inner.add(inner.t()).div(new Scalar(2.0));  // symmetric up to rounding; make it exact for eigh
    Tensor eig = eigenvalues(inner).clamp_min(new Scalar(0.0)).sqrt();
    double meanTerm = mu1.sub(mu2).pow(new Scalar(2.0)).sum().item_double();
    double d = meanTerm + s1.trace().item_double() + s2.trace().item_double() - 2 * eig.sum().item_double();
    return Math.max(0.0, d);  // >= 0 mathematically; rounding of near-singular covariances can dip below
  }

  private static Tensor eigenvalues(Tensor symmetric) {
    T_TensorTensor_T eig = torch.linalg_eigh(symmetric);
    return eig.get0();
  }

  /** Square root of a symmetric positive semi-definite matrix. */
  static Tensor psdSqrt(Tensor m) {
    T_TensorTensor_T eig = torch.linalg_eigh(m.add(m.t()).div(new Scalar(2.0)));
    Tensor values = eig.get0().clamp_min(new Scalar(0.0)).sqrt();
    Tensor vectors = eig.get1();
    return vectors.mul(values.unsqueeze(0)).matmul(vectors.t());
  }
}
