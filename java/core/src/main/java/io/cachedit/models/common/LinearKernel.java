package io.cachedit.models.common;

import java.util.Map;
import org.bytedeco.pytorch.Tensor;

/**
 * How a {@link Linear} multiplies once a policy has replaced its dense weight (quantisation does):
 * models never see it; they call {@link Linear#forward} as before.
 */
public interface LinearKernel extends AutoCloseable {
  /** {@code x W^T (+ bias)} for {@code x} [..., in]; {@code bias} null for none. */
  Tensor forward(Tensor x, Tensor bias);

  /**
   * {@code activation(x W^T (+ bias))}; kernels that can apply the activation as they write their
   * output override this (one pass fewer), the others compute it after.
   */
  default Tensor forward(Tensor x, Tensor bias, io.cachedit.kernels.FusedActivation activation) {
    return Linear.activate(forward(x, bias), activation);
  }

  /**
   * adaLN's gated residual {@code residual + gate[:, None] * (x W^T (+ bias))} for x [B, S, in],
   * residual [B, S, out] and gate [B, out]; kernels that can add it as they write their output
   * override this, the others compute it after (libtorch's addcmul).
   */
  default Tensor forwardGated(Tensor x, Tensor bias, Tensor residual, Tensor gate) {
    return AdaLayerNorms.addGated(residual, gate, forward(x, bias));
  }

  /** A short name of what it computes, e.g. {@code int8_per_row}. */
  String describe();

  /** Bytes the weight occupies in memory (scales included). */
  long weightBytes();

  /**
   * What a checkpoint of this layer holds in place of {@code weight}, by key relative to the layer
   * (e.g. {@code weight}, {@code weight_scale}).
   */
  Map<String, Tensor> checkpointTensors();

  /** Frees the kernel's native memory; idempotent. */
  @Override
  void close();
}
