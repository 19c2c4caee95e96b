package io.cachedit.pipeline;

import io.cachedit.io.JsonConfig;
import io.cachedit.io.WeightScope;
import io.cachedit.models.common.AbstractDiffusersModel;
import io.cachedit.models.common.Linear;
import org.bytedeco.pytorch.Tensor;

/**
 * A model that is not a transformer (no block lists), contributed by a {@link ModelProvider} through
 * {@code META-INF/services}: what a text encoder or VAE family added outside cachedit looks like.
 */
public final class TinyVae extends AbstractDiffusersModel {
  private final int channels;
  private final Linear decoder;

  public TinyVae(JsonConfig config, WeightScope w) {
    super("TinyVae", w);
    this.channels = config.getInt("latent_channels", 4);
    this.decoder = new Linear(w.pp("decoder"), channels, 3);
    finishLoading(w);
  }

  public Tensor decode(Tensor latents) {
    ensureOpen();
    return decoder.forward(latents);
  }

  @Override
  public String configJson() {
    return "{\"_class_name\": \"TinyVae\", \"latent_channels\": " + channels + "}";
  }

  /** The provider the service file names. */
  public static final class Provider implements ModelProvider {
    @Override
    public void register(ModelRegistry.Builder registry) {
      registry.register("TinyVae", TinyVae::new);
    }
  }
}
