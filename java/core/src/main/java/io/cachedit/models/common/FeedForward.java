package io.cachedit.models.common;

import io.cachedit.io.WeightScope;
import io.cachedit.kernels.FusedActivation;
import org.bytedeco.pytorch.Tensor;

/**
 * diffusers' {@code FeedForward}: {@code net.0} (activation with its projection {@code net.0.proj}),
 * {@code net.2} (output linear). Activations: {@code gelu}, {@code gelu-approximate} (tanh),
 * {@code geglu}, {@code swiglu}.
 */
public final class FeedForward {
  private final Linear proj;
  private final Linear out;
  private final String activation;

  public FeedForward(WeightScope w, long dim, long dimOut, long innerDim, String activation, boolean bias) {
    this.activation = activation;
    boolean gated = activation.equals("geglu") || activation.equals("swiglu");
    this.proj = new Linear(w.pp("net").pp(0).pp("proj"), dim, gated ? 2 * innerDim : innerDim, bias);
    this.out = new Linear(w.pp("net").pp(2), innerDim, dimOut, bias);
    if (!activation.equals("gelu") && !activation.equals("gelu-approximate") && !gated) {
      throw new IllegalArgumentException("unsupported feed-forward activation " + activation);
    }
  }

  /** {@code FeedForward(dim, dim_out, activation_fn)} with the default 4x inner dimension and biases. */
  public FeedForward(WeightScope w, long dim, long dimOut, String activation) {
    this(w, dim, dimOut, 4 * dim, activation, true);
  }

  /**
   * {@code AdaLayerNorms.addGated(residual, gate, forward(x))}, with the gated residual in the output
   * layer's pass where its kernel can ({@link Linear#forwardGated}).
   */
  public Tensor forwardGated(Tensor x, Tensor residual, Tensor gate) {
    if (activation.equals("gelu-approximate")) {
      return out.forwardGated(proj.forward(x, FusedActivation.GELU_TANH), residual, gate);
    }
    return AdaLayerNorms.addGated(residual, gate, forward(x));
  }

  public Tensor forward(Tensor x) {
    if (activation.equals("gelu-approximate")) {  // a linear kernel may apply it as it writes its output
      return out.forward(proj.forward(x, FusedActivation.GELU_TANH));
    }
    Tensor h = proj.forward(x);
    h = switch (activation) {
      case "gelu" -> Activations.gelu(h);
      case "geglu" -> {
        org.bytedeco.pytorch.TensorVector parts = h.chunk(2, -1);
        yield parts.get(0).mul(Activations.gelu(parts.get(1)));
      }
      default -> {
        org.bytedeco.pytorch.TensorVector parts = h.chunk(2, -1);
        yield parts.get(0).mul(Activations.silu(parts.get(1)));
      }
    };
    return out.forward(h);
  }
}
