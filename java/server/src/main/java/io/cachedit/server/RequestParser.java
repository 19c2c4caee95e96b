package io.cachedit.server;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import io.cachedit.cache.BasicCacheConfig;
import io.cachedit.cache.CacheOptions;
import io.cachedit.cache.CachePresets;
import io.cachedit.cache.DBCacheConfig;
import io.cachedit.cache.StepsPolicy;
import io.cachedit.cache.TaylorSeerCalibratorConfig;
import io.cachedit.error.ConfigException;
import io.cachedit.server.ImageRequest.CacheSetting;
import io.cachedit.server.ImageRequest.Output;
import java.util.Iterator;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ThreadLocalRandom;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Turns request bodies into {@link ImageRequest}s, checking every field before anything is queued:
 * unknown fields, wrong types and values out of range are a 400 that names the field and the
 * allowed values (docs/serving.md lists them).
 */
final class RequestParser {
  static final int MAX_STEPS = 200;
  static final double MAX_GUIDANCE = 20;
  static final int MAX_IMAGES = 4;
  static final int MAX_OPENAI_IMAGES = 10;
  static final int DEFAULT_STEPS = 28;
  static final double DEFAULT_GUIDANCE = 4.0;

  private static final Set<String> GENERATE_FIELDS = Set.of("prompt", "negative_prompt", "width", "height",
      "num_inference_steps", "guidance_scale", "seed", "num_images", "include_stats", "include_trace",
      "output_format", "output_dir", "cache");
  /** Fields of the reference's request that a single-image model without an image input cannot honour. */
  private static final Set<String> UNSUPPORTED = Set.of("sigmas", "image_urls", "num_frames", "fps");
  private static final Set<String> OPENAI_FIELDS = Set.of("prompt", "n", "size", "response_format", "user", "model",
      "quality", "negative_prompt", "num_inference_steps", "guidance_scale", "seed", "cache");
  private static final Pattern SIZE = Pattern.compile("(\\d{1,5})x(\\d{1,5})");
  private static final Pattern SAFE_DIR = Pattern.compile("[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*");
  private static final ObjectMapper SORTED = new ObjectMapper()
      .configure(SerializationFeature.ORDER_MAP_ENTRIES_BY_KEYS, true);

  private final ModelLimits limits;
  private final CacheSetting defaultCache;
  private final String modelId;

  /**
   * @param limits what the model accepts
   * @param defaultCache the setting of requests without a {@code cache} field (a preset name; null = none)
   * @param modelId the served model's id ({@code GET /v1/models}); OpenAI requests may name it
   */
  RequestParser(ModelLimits limits, String defaultCache, String modelId) {
    this.limits = limits;
    this.modelId = modelId;
    this.defaultCache = defaultCache == null ? CacheSetting.NONE : preset(defaultCache);
  }

  CacheSetting defaultCache() {
    return defaultCache;
  }

  /** {@code POST /generate} and {@code POST /v1/jobs}. */
  ImageRequest parseGenerate(JsonNode body) {
    requireObject(body);
    for (Iterator<String> it = body.fieldNames(); it.hasNext(); ) {
      String f = it.next();
      if (UNSUPPORTED.contains(f)) {
        throw HttpError.badField(f, f + " is not supported: the served model generates single images from a prompt;"
            + " remove the field");
      }
      if (!GENERATE_FIELDS.contains(f)) {
        throw HttpError.badField(f, "unknown field \"" + f + "\"; the fields are " + sorted(GENERATE_FIELDS));
      }
    }
    String prompt = prompt(body, "prompt", true);
    String negative = prompt(body, "negative_prompt", false);
    int width = side(body, "width");
    int height = side(body, "height");
    int steps = integer(body, "num_inference_steps", DEFAULT_STEPS, 1, MAX_STEPS);
    double guidance = number(body, "guidance_scale", DEFAULT_GUIDANCE, 0, MAX_GUIDANCE);
    long seed = seed(body);
    int n = integer(body, "num_images", 1, 1, MAX_IMAGES);
    boolean stats = bool(body, "include_stats");
    boolean trace = bool(body, "include_trace");
    String format = text(body, "output_format", "base64").toLowerCase(Locale.ROOT);
    Output output = switch (format) {
      case "base64" -> Output.BASE64;
      case "path" -> Output.PATH;
      default -> throw HttpError.badField("output_format", "output_format \"" + format
          + "\" is not one of base64, path");
    };
    String dir = text(body, "output_dir", "");
    if (!dir.isEmpty() && (output != Output.PATH || !SAFE_DIR.matcher(dir).matches() || dir.length() > 200)) {
      throw HttpError.badField("output_dir", output != Output.PATH
          ? "output_dir needs output_format \"path\""
          : "output_dir \"" + dir + "\" must be a relative folder of letters, digits, '.', '_', '-' and '/' (no"
              + " \"..\", at most 200 characters): images go under the server's --output-dir");
    }
    return new ImageRequest(prompt, negative, width, height, steps, guidance, seed, n, fitSteps(cache(body), steps),
        stats || trace, trace, output, dir);
  }

  /** {@code POST /v1/images/generations}: OpenAI's fields, plus cachedit's as extensions (docs/serving.md). */
  ImageRequest parseOpenAi(JsonNode body) {
    requireObject(body);
    for (Iterator<String> it = body.fieldNames(); it.hasNext(); ) {
      String f = it.next();
      if (!OPENAI_FIELDS.contains(f)) {
        throw HttpError.badField(f, "unknown field \"" + f + "\"; the fields are " + sorted(OPENAI_FIELDS));
      }
    }
    String prompt = prompt(body, "prompt", true);
    String model = text(body, "model", modelId);
    if (!model.equals(modelId)) {
      throw HttpError.badField("model", "model \"" + model + "\" is not served here; GET /v1/models lists \""
          + modelId + "\"");
    }
    String quality = text(body, "quality", "auto");
    if (!quality.equals("auto") && !quality.equals("standard")) {
      throw HttpError.badField("quality", "quality \"" + quality + "\" is not one of auto, standard");
    }
    text(body, "user", "");  // OpenAI's end-user id: accepted, checked to be a string, not used
    int n = integer(body, "n", 1, 1, MAX_OPENAI_IMAGES);
    int width = limits.defaultSide();
    int height = limits.defaultSide();
    String size = text(body, "size", "auto");
    if (!size.equals("auto")) {
      Matcher m = SIZE.matcher(size);
      if (!m.matches()) {
        throw HttpError.badField("size", "size \"" + size + "\" must be WIDTHxHEIGHT in pixels, e.g. \""
            + limits.defaultSide() + "x" + limits.defaultSide() + "\", or auto");
      }
      width = checkSide("size", Integer.parseInt(m.group(1)));
      height = checkSide("size", Integer.parseInt(m.group(2)));
    }
    String format = text(body, "response_format", "b64_json");
    Output output = switch (format) {
      case "b64_json" -> Output.BASE64;
      case "url" -> Output.URL;
      default -> throw HttpError.badField("response_format", "response_format \"" + format
          + "\" is not one of b64_json, url");
    };
    return new ImageRequest(prompt, prompt(body, "negative_prompt", false), width, height,
        integer(body, "num_inference_steps", DEFAULT_STEPS, 1, MAX_STEPS),
        number(body, "guidance_scale", DEFAULT_GUIDANCE, 0, MAX_GUIDANCE), seed(body), n, cache(body), false, false,
        output, "").withCheckedSteps();
  }

  /** {@code cache} if its step mask fits a {@code steps}-step generation; a 400 naming both fields otherwise. */
  static CacheSetting fitSteps(CacheSetting cache, int steps) {
    if (cache.options() != null) {
      cache.options().cacheConfig().stepsComputationMask().ifPresent(mask -> {
        try {
          mask.resolve(steps);
        } catch (RuntimeException e) {
          throw HttpError.badField("cache", "cache \"" + cache.key() + "\" does not fit num_inference_steps " + steps
              + ": " + e.getMessage());
        }
      });
    }
    return cache;
  }

  /** A request's {@code cache}: absent or null = the server's default, a preset name, or a cache-config object. */
  CacheSetting cache(JsonNode body) {
    JsonNode c = body.get("cache");
    if (c == null || c.isNull()) {
      return defaultCache;
    }
    if (c.isTextual()) {
      return preset(c.asText());
    }
    if (!c.isObject()) {
      throw HttpError.badField("cache", "cache must be a preset name (one of " + CachePresets.NAMES
          + ") or a cache-config object as the YAML files hold (docs/caching.md)");
    }
    if (c.has("parallelism_config") || c.has("quantize_config")) {
      throw HttpError.badField("cache." + (c.has("parallelism_config") ? "parallelism_config" : "quantize_config"),
          "parallelism and quantisation are fixed when the server starts; a request's cache may hold only"
              + " cache_config, calibrator_config and params_modifiers");
    }
    CacheOptions options;
    try {
      @SuppressWarnings("unchecked")
      Map<String, Object> doc = SORTED.convertValue(c, Map.class);
      options = CacheOptions.fromMap(doc, 1);
    } catch (ConfigException e) {
      throw HttpError.badField(e.field() == null ? "cache" : "cache." + e.field(), "cache: " + e.getMessage());
    } catch (IllegalArgumentException e) {
      throw HttpError.badField("cache", "cache: " + e.getMessage());
    }
    String key;
    try {
      key = SORTED.writeValueAsString(SORTED.convertValue(c, Object.class));
    } catch (JsonProcessingException e) {
      throw HttpError.badField("cache", "cache: " + e.getOriginalMessage());
    }
    return new CacheSetting(key, options, batchable(options));
  }

  private static CacheSetting preset(String name) {
    try {
      CacheOptions options = CachePresets.get(name).orElse(null);
      String key = name.trim().toLowerCase(Locale.ROOT);
      return options == null ? CacheSetting.NONE : new CacheSetting(key, options, batchable(options));
    } catch (ConfigException e) {
      throw HttpError.badField("cache", "cache \"" + name + "\" is not a preset; use one of " + CachePresets.NAMES
          + " or a cache-config object");
    }
  }

  /**
   * Whether a batch under {@code options} gives each request what it gets alone: a static step mask
   * decides every step in advance, whatever the tensors hold, and TaylorSeer works element by element.
   * Threshold-based decisions read the whole batch's residuals, so they would differ.
   */
  static boolean batchable(CacheOptions options) {
    if (options == null) {
      return true;
    }
    BasicCacheConfig c = options.cacheConfig();
    return c instanceof DBCacheConfig && c.stepsComputationMask().isPresent()
        && c.stepsComputationPolicy() == StepsPolicy.STATIC && options.paramsModifiers().isEmpty()
        && (options.calibratorConfig() == null || options.calibratorConfig() instanceof TaylorSeerCalibratorConfig);
  }

  private String prompt(JsonNode body, String field, boolean required) {
    JsonNode v = body.get(field);
    if (v == null || v.isNull()) {
      if (required) {
        throw HttpError.badField(field, field + " is required: one of " + limits.prompts());
      }
      return "";
    }
    if (!v.isTextual()) {
      throw HttpError.badField(field, field + " must be a string");
    }
    String p = v.asText();
    String norm = p.trim().toLowerCase(Locale.ROOT);
    if ((required && norm.isEmpty()) || (!norm.isEmpty() && !limits.prompts().contains(norm))) {
      throw HttpError.badField(field, field + " \"" + abbreviate(p) + "\" is not a prompt this model knows; use one of "
          + limits.prompts() + (required ? "" : " or \"\""));
    }
    return p;
  }

  private int side(JsonNode body, String field) {
    JsonNode v = body.get(field);
    if (v == null || v.isNull()) {
      return limits.defaultSide();
    }
    if (!v.isIntegralNumber() || !v.canConvertToInt()) {
      throw HttpError.badField(field, field + " must be an integer number of pixels, " + sideRange());
    }
    return checkSide(field, v.asInt());
  }

  private int checkSide(String field, int side) {
    if (side < limits.minSide() || side > limits.maxSide() || side % limits.pixelsPerToken() != 0) {
      throw HttpError.badField(field, field + " " + side + " is out of range: " + sideRange());
    }
    return side;
  }

  private String sideRange() {
    return "a multiple of " + limits.pixelsPerToken() + " in " + limits.minSide() + ".." + limits.maxSide()
        + " (default " + limits.defaultSide() + ")";
  }

  private static int integer(JsonNode body, String field, int dflt, int min, int max) {
    JsonNode v = body.get(field);
    if (v == null || v.isNull()) {
      return dflt;
    }
    if (!v.isIntegralNumber() || !v.canConvertToInt() || v.asInt() < min || v.asInt() > max) {
      throw HttpError.badField(field, field + " must be an integer in " + min + ".." + max + " (default " + dflt
          + "), got " + abbreviate(v.toString()));
    }
    return v.asInt();
  }

  private static double number(JsonNode body, String field, double dflt, double min, double max) {
    JsonNode v = body.get(field);
    if (v == null || v.isNull()) {
      return dflt;
    }
    if (!v.isNumber() || !(v.asDouble() >= min && v.asDouble() <= max)) {
      throw HttpError.badField(field, field + " must be a number in " + fmt(min) + ".." + fmt(max) + " (default "
          + fmt(dflt) + "), got " + abbreviate(v.toString()));
    }
    return v.asDouble();
  }

  private static long seed(JsonNode body) {
    JsonNode v = body.get("seed");
    if (v == null || v.isNull()) {
      return ThreadLocalRandom.current().nextLong(0, 1L << 53);  // reported back, so the image can be reproduced
    }
    if (!v.isIntegralNumber() || !v.canConvertToLong() || v.asLong() < 0) {
      throw HttpError.badField("seed", "seed must be an integer in 0.." + Long.MAX_VALUE + ", got "
          + abbreviate(v.toString()));
    }
    return v.asLong();
  }

  private static boolean bool(JsonNode body, String field) {
    JsonNode v = body.get(field);
    if (v == null || v.isNull()) {
      return false;
    }
    if (!v.isBoolean()) {
      throw HttpError.badField(field, field + " must be true or false");
    }
    return v.asBoolean();
  }

  private static String text(JsonNode body, String field, String dflt) {
    JsonNode v = body.get(field);
    if (v == null || v.isNull()) {
      return dflt;
    }
    if (!v.isTextual() || v.asText().length() > 256) {
      throw HttpError.badField(field, field + " must be a string of at most 256 characters");
    }
    return v.asText();
  }

  private static void requireObject(JsonNode body) {
    if (body == null || !body.isObject()) {
      throw new HttpError(400, null, "the request body must be a JSON object");
    }
  }

  private static String sorted(Set<String> fields) {
    return new java.util.TreeSet<>(fields).toString();
  }

  private static String fmt(double v) {
    return v == Math.rint(v) ? Long.toString((long) v) : Double.toString(v);
  }

  private static String abbreviate(String s) {
    return s.length() <= 60 ? s : s.substring(0, 57) + "...";
  }
}
