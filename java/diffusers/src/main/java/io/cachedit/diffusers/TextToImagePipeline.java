package io.cachedit.diffusers;

import io.cachedit.models.common.DiffusionPipeline;
import java.util.function.IntConsumer;

/**
 * A diffusers pipeline folder loaded whole: tokenizers, text encoders, the transformer and the VAE,
 * from prompt to images. Caching applies to {@link #denoiser()} as to any cachedit pipeline
 * ({@code CacheDit.enableCache(p.denoiser(), options)}). One generation at a time per instance; close
 * it to free every component.
 */
public interface TextToImagePipeline extends AutoCloseable {
  /** diffusers' pipeline class this folder declared (e.g. {@code FluxPipeline}). */
  String pipelineClass();

  /** The denoising pipeline (transformer + scheduler) that caching and parallelism attach to. */
  DiffusionPipeline denoiser();

  /** Height and width must be multiples of this (VAE downsampling x packing or patch size). */
  int sizeMultiple();

  /** diffusers' default height and width when the call gives none (1024 for FLUX.1 and SD3). */
  int defaultSize();

  /** Generates {@code request}; {@code onStep} (may be null) hears each finished step's index. */
  GeneratedImages generate(PromptRequest request, IntConsumer onStep);

  default GeneratedImages generate(PromptRequest request) {
    return generate(request, null);
  }

  @Override
  void close();
}
