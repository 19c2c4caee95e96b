package io.cachedit.server;

import io.cachedit.cache.CacheOptions;
import java.util.Objects;

/**
 * One validated image request, whichever route it came by: what to generate and how to answer.
 *
 * @param prompt a prompt the model knows
 * @param negativePrompt the classifier-free-guidance negative prompt ("" = unconditional)
 * @param width image width in pixels
 * @param height image height in pixels
 * @param steps denoising steps
 * @param guidance classifier-free guidance scale (1 or less: off)
 * @param seed seed of the request's initial noise
 * @param numImages images to generate
 * @param cache the cache setting of this request alone
 * @param includeStats whether the answer carries cache statistics
 * @param includeTrace whether those statistics carry every cache decision
 * @param output how the images come back
 * @param outputDir for {@link Output#PATH}: a folder under the server's output root ("" = the root)
 */
public record ImageRequest(String prompt, String negativePrompt, int width, int height, int steps, double guidance,
    long seed, int numImages, CacheSetting cache, boolean includeStats, boolean includeTrace, Output output,
    String outputDir) {
  /** How images are returned. */
  public enum Output {
    /** PNG bytes, base64 in the JSON answer. */
    BASE64,
    /** PNG files written under the server's output folder; the answer holds their paths. */
    PATH,
    /** PNG files served by this server; the answer holds their URLs (OpenAI's {@code url}). */
    URL
  }

  public ImageRequest {
    Objects.requireNonNull(prompt, "prompt");
    Objects.requireNonNull(negativePrompt, "negativePrompt");
    Objects.requireNonNull(cache, "cache");
    Objects.requireNonNull(output, "output");
    outputDir = outputDir == null ? "" : outputDir;
  }

  /**
   * A request's cache setting: a preset name or a cache-config object, resolved to options (null =
   * uncached), with a canonical key so equal settings compare equal.
   *
   * @param key canonical text of the setting ("none", a preset name, or the object as sorted JSON)
   * @param options what {@code CacheDit.enableCache} gets, or null for no caching
   * @param batchable whether the cache decisions of a batch cannot depend on the other requests in it:
   *     no caching, or a static step mask that fixes every decision in advance (with an element-wise
   *     calibrator); batching any other setting would change results, so such requests run alone
   */
  public record CacheSetting(String key, CacheOptions options, boolean batchable) {
    public static final CacheSetting NONE = new CacheSetting("none", null, true);
  }

  /** This request, its cache setting checked against its step count. */
  ImageRequest withCheckedSteps() {
    RequestParser.fitSteps(cache, steps);
    return this;
  }

  /**
   * Requests that may share one generation: same geometry, schedule, guidance and cache setting, and
   * a setting under which batching leaves each image unchanged.
   */
  boolean batchesWith(ImageRequest other) {
    return cache.batchable() && other.cache.batchable() && width == other.width && height == other.height
        && steps == other.steps && Double.compare(guidance, other.guidance) == 0 && cache.key().equals(other.cache.key());
  }
}
