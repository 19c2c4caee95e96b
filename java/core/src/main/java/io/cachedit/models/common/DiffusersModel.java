package io.cachedit.models.common;

import java.util.Map;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * A model loaded from (and savable to) a diffusers or transformers component folder: a transformer,
 * a text encoder, a VAE. Owns its weights: close it; using it after {@link #close()} is an
 * {@link IllegalStateException} naming it.
 */
public interface DiffusersModel extends AutoCloseable {
  /** The {@code _class_name} (diffusers) or {@code architectures[0]} (transformers) of its config. */
  String className();

  /** The config.json this model was built from. */
  String configJson();

  /** Parameters by checkpoint key. */
  Map<String, Tensor> parameters();

  ScalarType dtype();

  /**
   * The model's linear layers by checkpoint key prefix, in build order (what quantisation walks).
   * {@link IllegalStateException} once closed.
   */
  /**
   * Fails ({@link io.cachedit.error.WeightLoadException}) if a weight file this model's parameters are
   * memory-mapped from has changed since loading; pipelines call it before each generation.
   */
  default void checkWeightsUnchanged() {
  }

  default Map<String, Linear> linearLayers() {
    return Map.of();
  }

  @Override
  void close();
}
