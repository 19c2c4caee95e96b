package io.cachedit.kernels;

/**
 * What a linear kernel applies to its outputs, after the bias, as it writes them (docs/kernels.md
 * section 7): one pass over the output instead of a second op.
 */
public enum FusedActivation {
  /** The outputs as they are. */
  NONE(0),
  /**
   * gelu with the tanh approximation (diffusers' {@code gelu-approximate}), computed as
   * {@code x / (1 + exp(-2 sqrt(2/pi) (x + 0.044715 x^3)))}: within a few ulp of libtorch's
   * {@code gelu(x, "tanh")}.
   */
  GELU_TANH(1);

  final int code;

  FusedActivation(int code) {
    this.code = code;
  }
}
