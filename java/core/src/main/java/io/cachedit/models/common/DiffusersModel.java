package io.cachedit.models.common;

import java.util.Map;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * A transformer loaded from (and savable to) a diffusers folder. Owns its weights: close it.
 */
public interface DiffusersModel extends Transformer, AutoCloseable {
  /** diffusers' {@code _class_name}. */
  String className();

  /** The config.json this model was built from. */
  String configJson();

  /** Parameters by checkpoint key. */
  Map<String, Tensor> parameters();

  ScalarType dtype();

  /** The libtorch scaled-dot-product-attention backend this model's attention uses (default AUTO). */
  void setAttentionBackend(Attention.Backend backend);

  /** One forward from diffusers-named inputs; returns {@code sample}. */
  Tensor forward(ForwardInputs inputs, StepContext step);

  @Override
  void close();
}
