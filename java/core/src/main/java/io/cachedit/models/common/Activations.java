package io.cachedit.models.common;

import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

/** Activation functions by diffusers' names. */
public final class Activations {
  private Activations() {}

  /** {@code gelu} (exact, erf). */
  public static Tensor gelu(Tensor x) {
    return torch.gelu(x);
  }

  /** {@code gelu-approximate} / {@code nn.GELU(approximate="tanh")}. */
  public static Tensor geluTanh(Tensor x) {
    return torch.gelu(x, "tanh");
  }

  public static Tensor silu(Tensor x) {
    return torch.silu(x);
  }
}
