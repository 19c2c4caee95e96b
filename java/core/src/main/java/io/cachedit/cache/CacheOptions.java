package io.cachedit.cache;

import io.cachedit.error.ConfigException;
import io.cachedit.parallel.DistributedEnvironment;
import io.cachedit.parallel.ParallelismConfig;
import io.cachedit.quant.QuantizeConfig;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Everything {@code CacheDit.enableCache} takes: the cache config, an optional calibrator config and
 * per-block-list {@link ParamsModifier}s. Loadable from a YAML or JSON file with cache-dit's sections
 * (docs/algorithms.md section 8.5):
 *
 * <pre>
 * cache_config:
 *   Fn_compute_blocks: 1
 *   residual_diff_threshold: 0.12
 *   max_continuous_cached_steps: 3
 *   enable_taylorseer: true        # legacy calibrator keys are accepted here
 *   taylorseer_order: 1
 * calibrator_config:               # or a section of its own
 *   calibrator_type: taylorseer    # taylorseer | foca | dmd
 *   taylorseer_order: 2
 * params_modifiers:                # one per cached block list, in order, or each named
 *   - cache_config: {residual_diff_threshold: 0.16}
 *     blocks_name: single_transformer_blocks
 * parallelism_config:              # context parallelism over the processes (docs/parallelism.md)
 *   ulysses_size: auto             # auto: WORLD_SIZE over the other sizes
 *   ulysses_anything: true
 * quantize_config:                 # low-bit linear layers (docs/quantization.md)
 *   quant_type: int8_per_row
 * </pre>
 *
 * A file without a {@code cache_config} key is read as a flat cache section. Unknown keys are errors;
 * keys of the reference that cachedit does not implement are accepted at their default values (a
 * dump of a cache-dit config loads) and rejected, naming them, at any other value.
 *
 * @param cacheConfig the cache settings (DBCache or DBPrune)
 * @param calibratorConfig the calibrator, or null
 * @param paramsModifiers per-list overrides (may be empty)
 * @param parallelismConfig how the generation is split across processes, or null for one process
 * @param quantizeConfig how the transformers are quantised before caching is enabled, or null
 */
public record CacheOptions(BasicCacheConfig cacheConfig, CalibratorConfig calibratorConfig,
    List<ParamsModifier> paramsModifiers, ParallelismConfig parallelismConfig, QuantizeConfig quantizeConfig) {
  public CacheOptions {
    if (cacheConfig == null) {
      cacheConfig = DBCacheConfig.defaults();
    }
    paramsModifiers = paramsModifiers == null ? List.of() : List.copyOf(paramsModifiers);
  }

  /** Options without quantisation. */
  public CacheOptions(BasicCacheConfig cacheConfig, CalibratorConfig calibratorConfig,
      List<ParamsModifier> paramsModifiers, ParallelismConfig parallelismConfig) {
    this(cacheConfig, calibratorConfig, paramsModifiers, parallelismConfig, null);
  }

  /** Options for one process. */
  public CacheOptions(BasicCacheConfig cacheConfig, CalibratorConfig calibratorConfig,
      List<ParamsModifier> paramsModifiers) {
    this(cacheConfig, calibratorConfig, paramsModifiers, null, null);
  }

  /** These options with {@code config}'s parallelism (null: one process). */
  public CacheOptions withParallelism(ParallelismConfig config) {
    return new CacheOptions(cacheConfig, calibratorConfig, paramsModifiers, config, quantizeConfig);
  }

  /** These options with {@code config}'s quantisation (null: none). */
  public CacheOptions withQuantize(QuantizeConfig config) {
    return new CacheOptions(cacheConfig, calibratorConfig, paramsModifiers, parallelismConfig, config);
  }

  /** The quantisation, if any. */
  public java.util.Optional<QuantizeConfig> quantize() {
    return java.util.Optional.ofNullable(quantizeConfig);
  }

  /** The parallelism, if any. */
  public java.util.Optional<ParallelismConfig> parallelism() {
    return java.util.Optional.ofNullable(parallelismConfig);
  }

  /** The reference defaults: DBCache F8B0, W8, threshold 0.08, no calibrator. */
  public static CacheOptions defaults() {
    return new CacheOptions(DBCacheConfig.defaults(), null, List.of());
  }

  public static CacheOptions of(BasicCacheConfig cacheConfig) {
    return new CacheOptions(cacheConfig, null, List.of());
  }

  public static CacheOptions of(BasicCacheConfig cacheConfig, CalibratorConfig calibratorConfig) {
    return new CacheOptions(cacheConfig, calibratorConfig, List.of());
  }

  public CacheOptions withParamsModifiers(List<ParamsModifier> modifiers) {
    return new CacheOptions(cacheConfig, calibratorConfig, modifiers, parallelismConfig, quantizeConfig);
  }

  /** The largest cache config accepted (real ones are a few hundred bytes; a huge file is a mistake). */
  static final int MAX_CONFIG_CHARS = 1 << 20;

  /** Reads a YAML ({@code .yaml}/{@code .yml}) or JSON file; errors name the file and the key. */
  public static CacheOptions load(Path file) {
    String text;
    if (!Files.isRegularFile(file)) {  // a FIFO or device would block, a folder cannot be read
      throw new ConfigException("cache config file " + file + (Files.exists(file) ? " is not a regular file"
          : " does not exist"));
    }
    try {
      if (Files.size(file) > MAX_CONFIG_CHARS * 4L) {
        throw new ConfigException("cache config file " + file + " has " + Files.size(file) + " bytes; cache configs"
            + " are at most " + MAX_CONFIG_CHARS + " characters");
      }
      text = Files.readString(file);
    } catch (IOException e) {
      throw new ConfigException("cannot read cache config file " + file + ": " + e.getMessage());
    }
    String lower = file.getFileName().toString().toLowerCase(Locale.ROOT);
    boolean json = lower.endsWith(".json");
    try {
      return parse(text, json);
    } catch (ConfigException e) {
      throw e.inFile(file);
    }
  }

  /** Parses YAML (a superset of JSON) or, with {@code json}, strict JSON text. */
  public static CacheOptions parse(String text, boolean json) {
    Object root;
    try {
      if (text.length() > MAX_CONFIG_CHARS) {
        throw new ConfigException("the cache config has " + text.length() + " characters; cache configs are at most "
            + MAX_CONFIG_CHARS);
      }
      ObjectMapper mapper = (json ? new ObjectMapper() : new ObjectMapper(new YAMLFactory()))
          .enable(com.fasterxml.jackson.core.JsonParser.Feature.STRICT_DUPLICATE_DETECTION);  // no "last one wins"
      root = mapper.readValue(text, Object.class);
    } catch (JsonProcessingException e) {
      throw new ConfigException("invalid " + (json ? "JSON" : "YAML") + " at line "
          + (e.getLocation() == null ? "?" : e.getLocation().getLineNr()) + ": " + e.getOriginalMessage());
    }
    if (root == null) {
      return defaults();
    }
    return fromMap(map(root, "the document"));
  }

  /**
   * Builds options from an already parsed document (as the server receives a request's
   * {@code cache} object): the sections of a config file, or a flat cache section.
   */
  public static CacheOptions fromMap(Map<String, Object> doc) {
    return fromMap(doc, DistributedEnvironment.fromEnvironment().worldSize());
  }

  /**
   * As {@link #fromMap(Map)}, resolving an {@code auto} size of {@code parallelism_config} against
   * {@code worldSize} processes (the one-argument form uses this process's {@code WORLD_SIZE}).
   */
  public static CacheOptions fromMap(Map<String, Object> doc, int worldSize) {
    Map<String, Object> cacheSection;
    boolean sectioned = doc.containsKey("cache_config") || doc.containsKey("parallelism_config")
        || doc.containsKey("quantize_config");
    ParallelismConfig parallelism = null;
    QuantizeConfig quantize = null;
    if (sectioned) {
      for (String key : doc.keySet()) {
        switch (key) {
          case "cache_config", "calibrator_config", "params_modifiers" -> { }
          case "parallelism_config" -> {
            if (doc.get(key) != null) {
              parallelism = ParallelismConfig.fromMap(map(doc.get(key), key), worldSize);
            }
          }
          case "quantize_config" -> {
            if (doc.get(key) != null) {
              try {
                quantize = QuantizeConfig.fromMap(map(doc.get(key), key));
              } catch (ConfigException e) {
                throw ConfigException.forField(key + "." + e.field(), key + ": " + e.getMessage());
              }
            }
          }
          case "attention_backend" -> throw ConfigException.forField(key,
              "section " + key + " is not supported by this version of cachedit; remove it to load the cache settings");
          default -> throw ConfigException.forField(key, "unknown section \"" + key
              + "\"; known sections: cache_config, calibrator_config, params_modifiers, parallelism_config, "
              + "quantize_config");
        }
      }
      cacheSection = doc.get("cache_config") == null ? Map.of() : map(doc.get("cache_config"), "cache_config");
    } else {
      cacheSection = doc;  // flat legacy file
    }
    Map<String, Object> cacheValues = new LinkedHashMap<>(cacheSection);
    CalibratorConfig calibrator = legacyCalibrator(cacheValues);
    if (sectioned && doc.get("calibrator_config") != null) {
      if (calibrator != null) {
        throw new ConfigException("calibrator given twice: in cache_config (legacy keys) and in calibrator_config");
      }
      calibrator = calibrator(map(doc.get("calibrator_config"), "calibrator_config"));
    }
    BasicCacheConfig cache = cacheConfig(cacheValues);
    List<ParamsModifier> modifiers = new ArrayList<>();
    if (sectioned && doc.get("params_modifiers") != null) {
      Object list = doc.get("params_modifiers");
      if (!(list instanceof List<?> items)) {
        throw ConfigException.forField("params_modifiers",
            "params_modifiers must be a list of {cache_config: ..., calibrator_config: ..., blocks_name: ...}");
      }
      for (Object item : items) {
        modifiers.add(modifier(map(item, "a params_modifiers entry")));
      }
    }
    return new CacheOptions(cache, calibrator, modifiers, parallelism, quantize);
  }

  private static BasicCacheConfig cacheConfig(Map<String, Object> values) {
    Object type = values.remove("cache_type");
    boolean prune = type != null && "dbprune".equalsIgnoreCase(String.valueOf(type).trim());
    if (type != null && !prune && !"dbcache".equalsIgnoreCase(String.valueOf(type).trim())) {
      throw new ConfigException("cache_type", type, "must be DBCache or DBPrune");
    }
    if (!prune && values.containsKey("force_reduce_calibrator_vram")) {
      // a DBPrune setting; the reference's DBCache config has no such field and ignores it
      Object v = values.remove("force_reduce_calibrator_vram");
      if (v != null && ConfigValues.bool("force_reduce_calibrator_vram", v)) {
        throw new ConfigException("force_reduce_calibrator_vram", v, "applies only to cache_type: DBPrune");
      }
    }
    if (prune) {
      DBPruneConfig.Builder b = DBPruneConfig.builder();
      values.forEach((k, v) -> b.setByKey(k, v, true));
      return b.build();
    }
    DBCacheConfig.Builder b = DBCacheConfig.builder();
    values.forEach((k, v) -> b.setByKey(k, v, false));
    return b.build();
  }

  /** {@code calibrator_kwargs}: the reference's pass-through to calibrator constructors; only {} is accepted. */
  private static void calibratorKwargs(Object value) {
    if (value == null || (value instanceof Map<?, ?> m && m.isEmpty())) {
      return;
    }
    throw new ConfigException("calibrator_kwargs", value, "is not supported by cachedit: set the calibrator's "
        + "own keys instead (taylorseer_order, dmd_history, dmd_rank, dmd_ridge, dmd_svd_precision)");
  }

  /** Removes cache-dit's legacy calibrator keys from a cache section and builds their calibrator. */
  private static CalibratorConfig legacyCalibrator(Map<String, Object> values) {
    calibratorKwargs(values.remove("calibrator_kwargs"));
    boolean taylor = flag(values.remove("enable_taylorseer"), "enable_taylorseer", false);
    boolean dmd = flag(values.remove("enable_dmd"), "enable_dmd", false);
    boolean foca = flag(values.remove("enable_foca"), "enable_foca", false);
    Object taylorEncoder = values.remove("enable_encoder_taylorseer");
    Object dmdEncoder = values.remove("enable_encoder_dmd");
    Object focaEncoder = values.remove("enable_encoder_foca");
    Object order = values.remove("taylorseer_order");
    Object cacheType = values.remove("calibrator_cache_type");
    Object taylorCacheType = values.remove("taylorseer_cache_type");
    Object history = values.remove("dmd_history");
    Object rank = values.remove("dmd_rank");
    Object ridge = values.remove("dmd_ridge");
    Object precision = values.remove("dmd_svd_precision");
    if ((taylor ? 1 : 0) + (dmd ? 1 : 0) + (foca ? 1 : 0) > 1) {
      throw new ConfigException("enable_taylorseer, enable_dmd and enable_foca are mutually exclusive; set only one "
          + "of them to true");
    }
    // encoder defaults of the reference's legacy loader: off for TaylorSeer and FoCa, as enable_dmd for DMD
    if (taylor) {
      return new TaylorSeerCalibratorConfig(true, flag(taylorEncoder, "enable_encoder_taylorseer", false),
          cacheType(taylorCacheType != null ? taylorCacheType : cacheType),
          order == null ? 1 : ConfigValues.integer("taylorseer_order", order));
    }
    if (dmd) {
      return dmd(true, flag(dmdEncoder, "enable_encoder_dmd", true), cacheType(cacheType), history, rank, ridge,
          precision);
    }
    if (foca) {
      return new FoCaCalibratorConfig(true, flag(focaEncoder, "enable_encoder_foca", false), cacheType(cacheType));
    }
    return null;
  }

  private static DMDCalibratorConfig dmd(boolean hidden, boolean encoder, CalibratorCacheType type, Object history,
      Object rank, Object ridge, Object precision) {
    return new DMDCalibratorConfig(hidden, encoder, type,
        history == null ? 6 : ConfigValues.integer("dmd_history", history),
        rank == null ? 0 : ConfigValues.integer("dmd_rank", rank),
        ridge == null ? 1e-8 : ConfigValues.number("dmd_ridge", ridge), DMDCalibratorConfig.precision(precision));
  }

  private static boolean flag(Object value, String key, boolean defaultValue) {
    return value == null ? defaultValue : ConfigValues.bool(key, value);
  }

  private static CalibratorConfig calibrator(Map<String, Object> section) {
    Map<String, Object> v = new LinkedHashMap<>(section);
    Object typeValue = v.remove("calibrator_type");
    String type = typeValue == null ? "taylorseer" : String.valueOf(typeValue).trim().toLowerCase(Locale.ROOT);
    boolean hidden = flag(v.remove("enable_calibrator"), "enable_calibrator", true);
    boolean encoder = flag(v.remove("enable_encoder_calibrator"), "enable_encoder_calibrator", true);
    CalibratorCacheType cacheType = cacheType(v.remove("calibrator_cache_type"));
    calibratorKwargs(v.remove("calibrator_kwargs"));
    CalibratorConfig result;
    switch (type) {
      case "taylorseer" -> {
        Object order = v.remove("taylorseer_order");
        result = new TaylorSeerCalibratorConfig(hidden, encoder, cacheType,
            order == null ? 1 : ConfigValues.integer("taylorseer_order", order));
      }
      case "foca" -> result = new FoCaCalibratorConfig(hidden, encoder, cacheType);
      case "dmd" -> result = dmd(hidden, encoder, cacheType, v.remove("dmd_history"), v.remove("dmd_rank"),
          v.remove("dmd_ridge"), v.remove("dmd_svd_precision"));
      default -> throw new ConfigException("calibrator_type", typeValue, "must be taylorseer, foca or dmd");
    }
    if (!v.isEmpty()) {
      throw ConfigException.forField(v.keySet().iterator().next(), "unknown calibrator setting(s) " + v.keySet()
          + " for calibrator_type " + type + "; known: calibrator_type, enable_calibrator, enable_encoder_calibrator, "
          + "calibrator_cache_type, calibrator_kwargs, taylorseer_order (taylorseer), dmd_history, dmd_rank, "
          + "dmd_ridge, dmd_svd_precision (dmd)");
    }
    return result;
  }

  private static ParamsModifier modifier(Map<String, Object> entry) {
    CacheConfigOverlay.Builder overlay = CacheConfigOverlay.builder();
    CalibratorConfig calibrator = null;
    String name = null;
    for (Map.Entry<String, Object> e : entry.entrySet()) {
      switch (e.getKey()) {
        case "cache_config" -> map(e.getValue(), "cache_config").forEach((k, val) -> overlay.setByKey(k, val, true));
        case "calibrator_config" -> calibrator = calibrator(map(e.getValue(), "calibrator_config"));
        case "blocks_name" -> {
          if (!(e.getValue() instanceof String s) || s.isBlank()) {
            throw new ConfigException("blocks_name", e.getValue(), "must be the name of a cached block list");
          }
          name = s;
        }
        default -> throw ConfigException.forField(e.getKey(), "unknown key \"" + e.getKey()
            + "\" in params_modifiers; use cache_config, calibrator_config and blocks_name");
      }
    }
    return new ParamsModifier(overlay.build(), calibrator, name);
  }

  private static CalibratorCacheType cacheType(Object value) {
    if (value == null) {
      return CalibratorCacheType.RESIDUAL;
    }
    return switch (String.valueOf(value).trim().toLowerCase(Locale.ROOT)) {
      case "residual" -> CalibratorCacheType.RESIDUAL;
      case "hidden_states" -> CalibratorCacheType.HIDDEN_STATES;
      default -> throw new ConfigException("calibrator_cache_type", value, "must be residual or hidden_states");
    };
  }

  @SuppressWarnings("unchecked")
  private static Map<String, Object> map(Object value, String what) {
    if (!(value instanceof Map<?, ?> m)) {
      throw ConfigException.forField(what, what + " must be a mapping of keys to values, got " + value);
    }
    return (Map<String, Object>) m;
  }
}
