package io.cachedit.models.common;

import io.cachedit.io.WeightScope;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

/**
 * {@code y = x W^T + b} with checkpoint keys {@code weight} [out, in] and {@code bias} [out]. Under
 * tensor parallelism (its scope's {@link TensorParallel}) it holds this rank's shard as the model's
 * plan says: a column split computes its output features, a row split sums the group's partial
 * outputs before adding the bias, a gathered column split returns the whole output.
 *
 * <p>Every layer registers itself with its model's parameters under its key prefix, so policies
 * applied after loading find it ({@link DiffusersModel#linearLayers()}); quantisation replaces the
 * dense weight by a {@link LinearKernel} through {@link #install}.
 */
public final class Linear {
  private final String name;
  private final WeightScope.Parameters owner;
  private final long in;
  private final long out;
  private final org.bytedeco.pytorch.global.torch.ScalarType dtype;
  private volatile Tensor weight;
  private final Tensor bias;
  private final TensorParallel tp;
  private final TensorParallelPlan.Style style;
  private volatile LinearKernel kernel;

  public Linear(WeightScope w, long in, long out, boolean bias) {
    this.name = w.prefix();
    this.owner = w.parameters();
    this.tp = TensorParallel.of(w);
    this.style = tp.style(w.prefix());
    this.weight = w.get("weight", out, in);
    this.bias = bias ? w.get("bias", out) : null;
    this.out = weight.size(0);
    this.in = weight.size(1);
    this.dtype = weight.scalar_type().intern();
    w.register(this);
  }

  /** With a bias. */
  public Linear(WeightScope w, long in, long out) {
    this(w, in, out, true);
  }

  public Tensor forward(Tensor x) {
    LinearKernel k = kernel;
    if (style == TensorParallelPlan.Style.ROWWISE) {
      Tensor sum = tp.allReduceSum(k != null ? k.forward(x, null) : torch.linear(x, weight));
      return bias == null ? sum : sum.add(bias);
    }
    Tensor y;
    if (k != null) {
      y = k.forward(x, bias);
    } else {
      y = bias == null ? torch.linear(x, weight) : torch.linear(x, weight, bias);
    }
    return style == TensorParallelPlan.Style.COLWISE_GATHERED ? tp.allGather(y, -1) : y;
  }

  /**
   * {@code activation(forward(x))}: with a kernel installed (and no row split or gather, which come first)
   * the kernel applies it as it writes the output; otherwise libtorch computes it after.
   */
  public Tensor forward(Tensor x, io.cachedit.kernels.FusedActivation activation) {
    LinearKernel k = kernel;
    if (k != null && (style == null || style == TensorParallelPlan.Style.COLWISE)) {
      return k.forward(x, bias, activation);
    }
    return activate(forward(x), activation);
  }

  /**
   * {@code AdaLayerNorms.addGated(residual, gate, forward(x))}: the layer's output added to the
   * residual stream through adaLN's gate; a kernel installed on an unsplit layer does it as it writes
   * the output (the same bits), otherwise libtorch's addcmul after.
   */
  public Tensor forwardGated(Tensor x, Tensor residual, Tensor gate) {
    LinearKernel k = kernel;
    if (k != null && style == null && x.dim() == 3 && residual.dim() == 3 && gate.dim() == 2) {
      return k.forwardGated(x, bias, residual, gate);
    }
    return AdaLayerNorms.addGated(residual, gate, forward(x));
  }

  /** libtorch's form of a {@link io.cachedit.kernels.FusedActivation}. */
  static Tensor activate(Tensor y, io.cachedit.kernels.FusedActivation activation) {
    return switch (activation) {
      case NONE -> y;
      case GELU_TANH -> Activations.geluTanh(y);
    };
  }

  /** The checkpoint key prefix of this layer (e.g. {@code transformer_blocks.0.attn.to_q}). */
  public String name() {
    return name;
  }

  /** The dtype the weight was loaded in (the dtype it computes in, also once quantised). */
  public org.bytedeco.pytorch.global.torch.ScalarType dtype() {
    return dtype;
  }

  /** Output features this rank computes (all of them unless column-split). */
  public long outFeatures() {
    return out;
  }

  /** Input features this rank reads (all of them unless row-split). */
  public long inFeatures() {
    return in;
  }

  /** The dense weight [out, in]; {@link IllegalStateException} once a kernel replaced it. */
  public Tensor weight() {
    Tensor w = weight;
    if (w == null) {
      throw new IllegalStateException(name + " runs the " + kernel.describe() + " kernel (quantised or batch-invariant);"
          + " its dense weight is gone");
    }
    return w;
  }

  /** The bias, or null. */
  public Tensor bias() {
    return bias;
  }

  /** The kernel that replaced the dense weight, or null while the weight is dense. */
  public LinearKernel kernel() {
    return kernel;
  }

  /** How tensor parallelism splits this layer ({@code NONE} without). */
  public TensorParallelPlan.Style style() {
    return style;
  }

  /**
   * Replaces the dense weight by {@code replacement}, which the model then owns (closed with it), and
   * frees the dense weight. Once per layer: {@link IllegalStateException} if already replaced.
   */
  public synchronized void install(LinearKernel replacement) {
    if (kernel != null) {
      throw new IllegalStateException(name + " already runs the " + kernel.describe() + " kernel; a layer takes one");
    }
    owner.adopt(replacement);
    kernel = replacement;
    weight = null;
    owner.release(name.isEmpty() ? "weight" : name + ".weight");
  }
}
