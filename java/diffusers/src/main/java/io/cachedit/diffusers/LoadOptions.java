package io.cachedit.diffusers;

import io.cachedit.pipeline.ModelRegistry;
import java.nio.file.Path;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * How {@link Pipelines#load} builds a pipeline.
 *
 * @param dtype weights dtype (fp32 default; bf16 keeps real checkpoints at half the memory, norms and
 *     softmax still computing in fp32 where the reference does)
 * @param transformer a replacement transformer (diffusers' {@code transformer=} argument): a transformer
 *     folder, or one .safetensors file (with the folder's {@code transformer/config.json} when no
 *     config.json lies beside it); null: the folder's own
 * @param keepTextEncoders keep text encoders loaded between generations (false: load them for each
 *     request's prompt encoding and free them before denoising, trading time for memory)
 * @param registry the model classes to load with
 * @param vaeTiling decode (and encode) large images in overlapping tiles ({@code AutoencoderKL} pipelines:
 *     FLUX, SD3, Z-Image), as diffusers' {@code vae.enable_tiling()}
 */
public record LoadOptions(ScalarType dtype, Path transformer, boolean keepTextEncoders, ModelRegistry registry,
    boolean vaeTiling) {
  public LoadOptions(ScalarType dtype, Path transformer, boolean keepTextEncoders, ModelRegistry registry) {
    this(dtype, transformer, keepTextEncoders, registry, false);
  }

  public LoadOptions {
    if (dtype == null) {
      dtype = ScalarType.Float;
    }
    if (registry == null) {
      registry = ModelRegistry.defaults();
    }
  }

  public static LoadOptions defaults() {
    return new LoadOptions(ScalarType.Float, null, true, null);
  }

  public LoadOptions withDtype(ScalarType d) {
    return new LoadOptions(d, transformer, keepTextEncoders, registry, vaeTiling);
  }

  public LoadOptions withTransformer(Path t) {
    return new LoadOptions(dtype, t, keepTextEncoders, registry, vaeTiling);
  }

  public LoadOptions withKeepTextEncoders(boolean keep) {
    return new LoadOptions(dtype, transformer, keep, registry, vaeTiling);
  }

  public LoadOptions withVaeTiling(boolean tiling) {
    return new LoadOptions(dtype, transformer, keepTextEncoders, registry, tiling);
  }
}
