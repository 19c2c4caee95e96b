package io.cachedit.diffusers;

import io.cachedit.error.UnsupportedModelException;
import io.cachedit.kernels.NativeRuntime;
import io.cachedit.pipeline.PipelineFolder;
import java.nio.file.Path;
import java.util.List;

/**
 * Loads a diffusers pipeline folder whole, as {@code DiffusionPipeline.from_pretrained(folder)} does:
 * {@code model_index.json} names the pipeline class and each component, every component loads by its
 * class. Supported: {@code FluxPipeline} (FLUX.1 dev / schnell), {@code StableDiffusion3Pipeline}
 * (SD3 / SD3.5), {@code ZImagePipeline} (Z-Image, Z-Image-Turbo), {@code QwenImagePipeline}
 * (Qwen-Image) and {@code WanPipeline} (Wan 2.1 / 2.2 A14B text to video: frames as images). See
 * docs/pipelines.md.
 */
public final class Pipelines {
  /** The pipeline classes {@link #load} builds. */
  public static final List<String> SUPPORTED = List.of("FluxPipeline", "StableDiffusion3Pipeline", "ZImagePipeline",
      "QwenImagePipeline", "WanPipeline");

  private Pipelines() {}

  /** {@link #load(Path, LoadOptions)} with fp32 weights and every component kept loaded. */
  public static TextToImagePipeline load(Path dir) {
    return load(dir, LoadOptions.defaults());
  }

  /**
   * Loads the pipeline folder {@code dir}; a missing component, a component of an unknown class or a
   * malformed file is an error naming it.
   */
  public static TextToImagePipeline load(Path dir, LoadOptions options) {
    NativeRuntime.initialize();
    PipelineFolder folder = PipelineFolder.open(dir);
    String cls = folder.pipelineClass();
    if (cls == null) {
      throw new UnsupportedModelException(dir.resolve(PipelineFolder.INDEX) + " has no _class_name; cachedit loads "
          + SUPPORTED);
    }
    return switch (cls) {
      case "FluxPipeline" -> new FluxTextToImage(folder, options);
      case "StableDiffusion3Pipeline" -> new SD3TextToImage(folder, options);
      case "ZImagePipeline" -> new ZImageTextToImage(folder, options);
      case "QwenImagePipeline" -> new QwenImageTextToImage(folder, options);
      case "WanPipeline" -> new WanTextToVideo(folder, options);
      default -> throw new UnsupportedModelException(dir.resolve(PipelineFolder.INDEX) + ": pipeline class " + cls
          + " is not supported; cachedit loads " + SUPPORTED + " (other families' transformers load with "
          + "ModelRegistry)");
    };
  }
}
