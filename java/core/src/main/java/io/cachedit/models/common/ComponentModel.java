package io.cachedit.models.common;

import java.util.List;
import java.util.Map;
import org.bytedeco.pytorch.Tensor;

/**
 * A pipeline component that is not a denoising transformer (a text encoder, a VAE), called by method
 * name with its reference arguments, returning its outputs under the reference names: what
 * {@code cachedit forward --call} runs to compare numbers with the Python libraries.
 */
public interface ComponentModel extends DiffusersModel {
  /** The methods {@link #call} runs: {@code forward} for text encoders, {@code decode}/{@code encode} for VAEs. */
  List<String> calls();

  /**
   * Runs {@code method} on {@code inputs} (tensors by argument name, plain values such as
   * {@code output_hidden_states}); outputs by reference name, e.g. {@code last_hidden_state},
   * {@code hidden_states.0}, {@code sample}, {@code latent_dist.mean}.
   */
  Map<String, Tensor> call(String method, ForwardInputs inputs);
}
