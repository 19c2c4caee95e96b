package io.cachedit.models.common;

import io.cachedit.io.WeightScope;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

/** {@code y = x W^T + b} with checkpoint keys {@code weight} [out, in] and {@code bias} [out]. */
public final class Linear {
  private final Tensor weight;
  private final Tensor bias;

  public Linear(WeightScope w, long in, long out, boolean bias) {
    this.weight = w.get("weight", out, in);
    this.bias = bias ? w.get("bias", out) : null;
  }

  /** With a bias. */
  public Linear(WeightScope w, long in, long out) {
    this(w, in, out, true);
  }

  public Tensor forward(Tensor x) {
    return bias == null ? torch.linear(x, weight) : torch.linear(x, weight, bias);
  }

  /** The dtype of the weight. */
  public org.bytedeco.pytorch.global.torch.ScalarType dtype() {
    return weight.scalar_type().intern();
  }

  public long outFeatures() {
    return weight.size(0);
  }
}
