package io.cachedit.cli;

import io.cachedit.CacheDit;
import io.cachedit.cache.CacheOptions;
import io.cachedit.error.ConfigException;
import io.cachedit.models.common.DiffusersModel;
import io.cachedit.quant.QuantType;
import io.cachedit.quant.QuantizeConfig;
import io.cachedit.quant.QuantizeReport;
import java.io.PrintStream;

/**
 * {@code --quantize TYPE[:GROUP]} of generate, bench and forward: the model is quantised once after
 * loading (after sharding under tensor parallelism), never per generation.
 */
final class QuantizeOption {
  static final String DESCRIPTION = "quantise the transformer's linear layers: float8_per_row, float8_per_tensor, "
      + "float8_weight_only, int8_per_row, int8_per_tensor, int8_weight_only, int4_weight_only (int4_weight_only:128 "
      + "for groups of 128 inputs; default 32). See docs/quantization.md";

  private QuantizeOption() {}

  /** The config {@code --quantize} spells, or null. */
  static QuantizeConfig parse(String flag) {
    if (flag == null) {
      return null;
    }
    String type = flag;
    int group = 32;
    int colon = flag.indexOf(':');
    if (colon >= 0) {
      type = flag.substring(0, colon);
      try {
        group = Integer.parseInt(flag.substring(colon + 1).trim());
      } catch (NumberFormatException e) {
        throw ConfigException.forField("--quantize", "--quantize " + flag + ": the group size after ':' must be an "
            + "integer, e.g. int4_weight_only:128");
      }
    }
    QuantType t = QuantType.of(type, "--quantize");
    if (colon >= 0 && t != QuantType.INT4_WEIGHT_ONLY) {
      throw ConfigException.forField("--quantize", "--quantize " + flag + ": only int4_weight_only takes a group size");
    }
    try {
      return QuantizeConfig.of(t).withGroupSize(group);
    } catch (ConfigException e) {
      throw ConfigException.forField("--quantize", "--quantize " + flag + ": " + e.getMessage());
    }
  }

  /**
   * The quantisation to apply: {@code --quantize} or the cache config file's {@code quantize_config}
   * (both is an error).
   */
  static QuantizeConfig resolve(String flag, CacheOptions file) {
    QuantizeConfig fromFlag = parse(flag);
    QuantizeConfig fromFile = file == null ? null : file.quantizeConfig();
    if (fromFlag != null && fromFile != null) {
      throw ConfigException.forField("--quantize", "--quantize " + flag + " and the cache config file's "
          + "quantize_config both say how to quantise; keep one");
    }
    return fromFlag != null ? fromFlag : fromFile;
  }

  /** The options without their quantisation (applied once at load instead). */
  static CacheOptions withoutQuantize(CacheOptions options) {
    return options == null || options.quantizeConfig() == null ? options : options.withQuantize(null);
  }

  /** Quantises {@code model} and prints the report's summary to {@code err}; null config: nothing. */
  static QuantizeReport apply(DiffusersModel model, QuantizeConfig config, PrintStream err) {
    if (config == null) {
      return null;
    }
    QuantizeReport r = CacheDit.quantize(model, config);
    if (err != null) {
      err.println("quantised (" + config.quantType() + "): " + r.summary());
    }
    return r;
  }
}
