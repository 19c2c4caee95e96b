package io.cachedit.models.common;

import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/** Normalisations with diffusers' numerics. */
public final class Norms {
  private Norms() {}

  /** {@code nn.LayerNorm(dim, elementwise_affine=False, eps)} over the last dimension. */
  public static Tensor layerNorm(Tensor x, double eps) {
    return torch.layer_norm(x, new long[] {x.size(-1)}, new TensorOptional(), new TensorOptional(), eps, true);
  }

  /** {@code nn.LayerNorm(dim, eps)} with weight and (optional) bias. */
  public static Tensor layerNorm(Tensor x, Tensor weight, Tensor bias, double eps) {
    return torch.layer_norm(x, new long[] {x.size(-1)}, new TensorOptional(weight),
        bias == null ? new TensorOptional() : new TensorOptional(bias), eps, true);
  }

  /**
   * {@code torch.nn.RMSNorm} (libtorch's composite): normalise in fp32, multiply by the weight, then
   * cast to the input dtype.
   */
  public static Tensor torchRmsNorm(Tensor x, Tensor weight, double eps) {
    ScalarType inputType = x.scalar_type().intern();
    Tensor xf = x.to(ScalarType.Float);
    Tensor r = torch.rsqrt(xf.pow(new Scalar(2.0)).mean(new long[] {-1}, true,
        new org.bytedeco.pytorch.ScalarTypeOptional()).add(new Scalar(eps)));
    Tensor h = xf.mul(r);
    if (weight != null) {
      h = h.mul(weight);
    }
    return h.to(inputType);
  }

  /**
   * {@link #torchRmsNorm} over features split across a tensor-parallel group ({@code x} and
   * {@code weight} hold this rank's share): the squares are summed locally, the sums added over the
   * group, and the mean taken over all {@code tp.size()} shares, so every rank normalises by the
   * whole vector's root mean square.
   */
  public static Tensor torchRmsNorm(Tensor x, Tensor weight, double eps, TensorParallel tp) {
    if (!tp.active()) {
      return torchRmsNorm(x, weight, eps);
    }
    ScalarType inputType = x.scalar_type().intern();
    Tensor xf = x.to(ScalarType.Float);
    Tensor squares = tp.allReduceSum(xf.pow(new Scalar(2.0)).sum(new long[] {-1}, true,
        new org.bytedeco.pytorch.ScalarTypeOptional()));
    Tensor r = torch.rsqrt(squares.div(new Scalar((double) x.size(-1) * tp.size())).add(new Scalar(eps)));
    Tensor h = xf.mul(r);
    if (weight != null) {
      h = h.mul(weight);
    }
    return h.to(inputType);
  }

  /** diffusers' {@code FP32LayerNorm}: layer norm computed in fp32, returned in fp32. */
  public static Tensor fp32LayerNorm(Tensor x, Tensor weight, Tensor bias, double eps) {
    Tensor xf = x.to(ScalarType.Float);
    return weight == null ? layerNorm(xf, eps)
        : layerNorm(xf, weight.to(ScalarType.Float), bias == null ? null : bias.to(ScalarType.Float), eps);
  }

  /**
   * diffusers' {@code RMSNorm}: the mean square in fp32, {@code x * rsqrt(ms + eps)}; with a weight in
   * fp16/bf16 the normalised value is cast to the weight's dtype before scaling, else back to the
   * input dtype after.
   */
  public static Tensor rmsNorm(Tensor x, Tensor weight, double eps) {
    ScalarType inputType = x.scalar_type().intern();
    if (inputType == ScalarType.Float && (weight == null || weight.scalar_type().intern() == ScalarType.Float)) {
      // fp32 throughout: libtorch's rms_norm is this composite, bit for bit, in one call instead of six
      return torch.rms_norm(x, new long[] {x.size(-1)}, weight == null ? new TensorOptional() : new TensorOptional(weight),
          new org.bytedeco.pytorch.DoubleOptional(eps));
    }
    Tensor xf = x.to(ScalarType.Float);
    Tensor variance = xf.pow(new Scalar(2.0)).mean(new long[] {-1}, true, new org.bytedeco.pytorch.ScalarTypeOptional());
    Tensor h = xf.mul(torch.rsqrt(variance.add(new Scalar(eps))));
    if (weight == null) {
      return h.to(inputType);
    }
    ScalarType wt = weight.scalar_type().intern();
    if (wt == ScalarType.Half || wt == ScalarType.BFloat16) {
      return h.to(wt).mul(weight);
    }
    return h.mul(weight).to(inputType);
  }
}
