package io.cachedit.diffusers;

import io.cachedit.error.ConfigException;

/**
 * A prompt-level generation request, the arguments of a diffusers pipeline call.
 *
 * @param prompt the prompt ({@code ""} allowed)
 * @param negativePrompt the negative prompt, or null (FLUX: enables true CFG with {@code trueCfgScale} > 1;
 *     SD3: {@code ""} when null and CFG is on)
 * @param height pixels (a multiple of the pipeline's {@link TextToImagePipeline#sizeMultiple()})
 * @param width pixels (same)
 * @param steps inference steps
 * @param guidanceScale FLUX: the guidance embedding; SD3: the CFG scale (> 1 enables CFG)
 * @param trueCfgScale FLUX's true CFG scale (1: off); unused by SD3
 * @param numImages images per prompt
 * @param seed the noise seed ({@code torch.Generator().manual_seed(seed)} in diffusers)
 * @param maxSequenceLength text tokens (null: the pipeline's default, FLUX 512, SD3 256)
 * @param numFrames video pipelines (Wan): frames, 1 + 4k (null: 81); images: null
 */
public record PromptRequest(String prompt, String negativePrompt, int height, int width, int steps,
    double guidanceScale, double trueCfgScale, int numImages, long seed, Integer maxSequenceLength, Integer numFrames) {
  /** An image request. */
  public PromptRequest(String prompt, String negativePrompt, int height, int width, int steps, double guidanceScale,
      double trueCfgScale, int numImages, long seed, Integer maxSequenceLength) {
    this(prompt, negativePrompt, height, width, steps, guidanceScale, trueCfgScale, numImages, seed, maxSequenceLength,
        null);
  }

  public PromptRequest {
    if (numFrames != null && (numFrames < 1 || (numFrames - 1) % 4 != 0 || numFrames > 1025)) {
      throw ConfigException.forField("num_frames", "num_frames must be 1 + 4k (1, 5, ..., 81, ...), at most 1025, got "
          + numFrames);
    }
    if (prompt == null) {
      throw ConfigException.forField("prompt", "prompt must not be null (use \"\" for an empty prompt)");
    }
    if (height < 1 || width < 1 || height > 16384 || width > 16384) {
      throw ConfigException.forField("height", "height and width must be 1..16384 pixels, got " + height + "x" + width);
    }
    if (steps < 1 || steps > 10000) {
      throw ConfigException.forField("steps", "steps must be 1..10000, got " + steps);
    }
    if (numImages < 1 || numImages > 4096) {
      throw ConfigException.forField("num_images", "num_images must be 1..4096, got " + numImages);
    }
    if (!Double.isFinite(guidanceScale) || !Double.isFinite(trueCfgScale)) {
      throw ConfigException.forField("guidance_scale", "guidance scales must be finite numbers");
    }
    if (maxSequenceLength != null && (maxSequenceLength < 1 || maxSequenceLength > 4096)) {
      throw ConfigException.forField("max_sequence_length", "max_sequence_length must be 1..4096, got "
          + maxSequenceLength);
    }
  }

  /** A prompt at a size with the family's defaults for the rest (seed 0, one image). */
  public static PromptRequest of(String prompt, int height, int width, int steps, double guidanceScale) {
    return new PromptRequest(prompt, null, height, width, steps, guidanceScale, 1.0, 1, 0, null);
  }

  public PromptRequest withSeed(long newSeed) {
    return new PromptRequest(prompt, negativePrompt, height, width, steps, guidanceScale, trueCfgScale, numImages,
        newSeed, maxSequenceLength, numFrames);
  }

  public PromptRequest withNegativePrompt(String negative, double trueCfg) {
    return new PromptRequest(prompt, negative, height, width, steps, guidanceScale, trueCfg, numImages, seed,
        maxSequenceLength, numFrames);
  }

  public PromptRequest withNumImages(int n) {
    return new PromptRequest(prompt, negativePrompt, height, width, steps, guidanceScale, trueCfgScale, n, seed,
        maxSequenceLength, numFrames);
  }

  public PromptRequest withMaxSequenceLength(Integer n) {
    return new PromptRequest(prompt, negativePrompt, height, width, steps, guidanceScale, trueCfgScale, numImages, seed,
        n, numFrames);
  }

  public PromptRequest withFrames(Integer frames) {
    return new PromptRequest(prompt, negativePrompt, height, width, steps, guidanceScale, trueCfgScale, numImages, seed,
        maxSequenceLength, frames);
  }
}
