package io.cachedit.models.common;

import io.cachedit.io.WeightScope;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

/**
 * {@code y = x W^T + b} with checkpoint keys {@code weight} [out, in] and {@code bias} [out]. Under
 * tensor parallelism (its scope's {@link TensorParallel}) it holds this rank's shard as the model's
 * plan says: a column split computes its output features, a row split sums the group's partial
 * outputs before adding the bias, a gathered column split returns the whole output.
 */
public final class Linear {
  private final Tensor weight;
  private final Tensor bias;
  private final TensorParallel tp;
  private final TensorParallelPlan.Style style;

  public Linear(WeightScope w, long in, long out, boolean bias) {
    this.tp = TensorParallel.of(w);
    this.style = tp.style(w.prefix());
    this.weight = w.get("weight", out, in);
    this.bias = bias ? w.get("bias", out) : null;
  }

  /** With a bias. */
  public Linear(WeightScope w, long in, long out) {
    this(w, in, out, true);
  }

  public Tensor forward(Tensor x) {
    if (style == TensorParallelPlan.Style.ROWWISE) {
      Tensor sum = tp.allReduceSum(torch.linear(x, weight));
      return bias == null ? sum : sum.add(bias);
    }
    Tensor y = bias == null ? torch.linear(x, weight) : torch.linear(x, weight, bias);
    return style == TensorParallelPlan.Style.COLWISE_GATHERED ? tp.allGather(y, -1) : y;
  }

  /** The dtype of the weight. */
  public org.bytedeco.pytorch.global.torch.ScalarType dtype() {
    return weight.scalar_type().intern();
  }

  /** Output features this rank computes (all of them unless column-split). */
  public long outFeatures() {
    return weight.size(0);
  }
}
