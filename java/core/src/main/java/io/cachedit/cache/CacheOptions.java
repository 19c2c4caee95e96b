package io.cachedit.cache;

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
 * (SPEC 8.9):
 *
 * <pre>
 * cache_config:
 *   Fn_compute_blocks: 1
 *   residual_diff_threshold: 0.12
 *   max_continuous_cached_steps: 3
 *   enable_taylorseer: true        # legacy calibrator keys are accepted here
 *   taylorseer_order: 1
 * calibrator_config:               # or a section of its own
 *   calibrator_type: taylorseer    # taylorseer | foca
 *   taylorseer_order: 2
 * params_modifiers:                # per block list, in order
 *   - cache_config: {residual_diff_threshold: 0.16}
 * </pre>
 *
 * A file without a {@code cache_config} key is read as a flat cache section. Unknown keys are errors.
 *
 * @param cacheConfig the cache settings (DBCache or DBPrune)
 * @param calibratorConfig the calibrator, or null
 * @param paramsModifiers per-list overrides (may be empty)
 */
public record CacheOptions(BasicCacheConfig cacheConfig, CalibratorConfig calibratorConfig,
    List<ParamsModifier> paramsModifiers) {
  public CacheOptions {
    if (cacheConfig == null) {
      cacheConfig = DBCacheConfig.defaults();
    }
    paramsModifiers = paramsModifiers == null ? List.of() : List.copyOf(paramsModifiers);
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
    return new CacheOptions(cacheConfig, calibratorConfig, modifiers);
  }

  /** Reads a YAML ({@code .yaml}/{@code .yml}) or JSON file; errors name the file and the key. */
  public static CacheOptions load(Path file) {
    String text;
    try {
      text = Files.readString(file);
    } catch (IOException e) {
      throw new ConfigException("cannot read cache config file " + file + ": " + e.getMessage());
    }
    String lower = file.getFileName().toString().toLowerCase(Locale.ROOT);
    boolean json = lower.endsWith(".json");
    try {
      return parse(text, json);
    } catch (ConfigException e) {
      throw new ConfigException(file + ": " + e.getMessage());
    }
  }

  /** Parses YAML (a superset of JSON) or, with {@code json}, strict JSON text. */
  public static CacheOptions parse(String text, boolean json) {
    Object root;
    try {
      ObjectMapper mapper = json ? new ObjectMapper() : new ObjectMapper(new YAMLFactory());
      root = mapper.readValue(text, Object.class);
    } catch (JsonProcessingException e) {
      throw new ConfigException("invalid " + (json ? "JSON" : "YAML") + " at line "
          + e.getLocation().getLineNr() + ": " + e.getOriginalMessage());
    }
    if (root == null) {
      return defaults();
    }
    Map<String, Object> doc = map(root, "the document");
    Map<String, Object> cacheSection;
    if (doc.containsKey("cache_config")) {
      for (String key : doc.keySet()) {
        switch (key) {
          case "cache_config", "calibrator_config", "params_modifiers" -> { }
          case "parallelism_config", "quantize_config", "attention_backend" -> throw new ConfigException(
              "section " + key + " is not supported by this version of cachedit; remove it to load the cache settings");
          default -> throw new ConfigException("unknown section \"" + key
              + "\"; known sections: cache_config, calibrator_config, params_modifiers");
        }
      }
      cacheSection = doc.get("cache_config") == null ? Map.of() : map(doc.get("cache_config"), "cache_config");
    } else {
      cacheSection = doc;  // flat legacy file
    }
    Map<String, Object> cacheValues = new LinkedHashMap<>(cacheSection);
    CalibratorConfig calibrator = legacyCalibrator(cacheValues);
    if (doc.containsKey("calibrator_config") && doc != cacheSection) {
      if (calibrator != null) {
        throw new ConfigException("calibrator given twice: in cache_config (legacy keys) and in calibrator_config");
      }
      calibrator = calibrator(map(doc.get("calibrator_config"), "calibrator_config"));
    }
    BasicCacheConfig cache = cacheConfig(cacheValues);
    List<ParamsModifier> modifiers = new ArrayList<>();
    if (doc.containsKey("params_modifiers") && doc != cacheSection) {
      Object list = doc.get("params_modifiers");
      if (!(list instanceof List<?> items)) {
        throw new ConfigException("params_modifiers must be a list of {cache_config: ..., calibrator_config: ...}");
      }
      for (Object item : items) {
        modifiers.add(modifier(map(item, "a params_modifiers entry")));
      }
    }
    return new CacheOptions(cache, calibrator, modifiers);
  }

  private static BasicCacheConfig cacheConfig(Map<String, Object> values) {
    Object type = values.remove("cache_type");
    boolean prune = type != null && "dbprune".equalsIgnoreCase(String.valueOf(type));
    if (type != null && !prune && !"dbcache".equalsIgnoreCase(String.valueOf(type))) {
      throw new ConfigException("cache_type", type, "must be DBCache or DBPrune");
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

  /** Removes cache-dit's legacy calibrator keys from a cache section and builds their calibrator. */
  private static CalibratorConfig legacyCalibrator(Map<String, Object> values) {
    Object taylor = values.remove("enable_taylorseer");
    Object encoder = values.remove("enable_encoder_taylorseer");
    Object order = values.remove("taylorseer_order");
    Object foca = values.remove("enable_foca");
    Object cacheType = values.remove("calibrator_cache_type");
    Object legacyType = values.remove("taylorseer_cache_type");
    boolean useTaylor = taylor != null && ConfigValues.bool("enable_taylorseer", taylor);
    boolean useFoca = foca != null && ConfigValues.bool("enable_foca", foca);
    if (useTaylor && useFoca) {
      throw new ConfigException("enable_taylorseer and enable_foca are both true; choose one calibrator");
    }
    CalibratorCacheType type = cacheType(cacheType != null ? cacheType : legacyType);
    // the legacy loader's encoder default is false (SPEC 6)
    boolean enc = encoder != null && ConfigValues.bool("enable_encoder_taylorseer", encoder);
    if (useTaylor) {
      return new TaylorSeerCalibratorConfig(true, enc, type,
          order == null ? 1 : ConfigValues.integer("taylorseer_order", order));
    }
    if (useFoca) {
      return new FoCaCalibratorConfig(true, enc, type);
    }
    return null;
  }

  private static CalibratorConfig calibrator(Map<String, Object> section) {
    Map<String, Object> v = new LinkedHashMap<>(section);
    String type = String.valueOf(v.getOrDefault("calibrator_type", "taylorseer")).toLowerCase(Locale.ROOT);
    v.remove("calibrator_type");
    boolean hidden = !v.containsKey("enable_calibrator")
        || ConfigValues.bool("enable_calibrator", v.remove("enable_calibrator"));
    boolean encoder = !v.containsKey("enable_encoder_calibrator")
        || ConfigValues.bool("enable_encoder_calibrator", v.remove("enable_encoder_calibrator"));
    CalibratorCacheType cacheType = cacheType(v.remove("calibrator_cache_type"));
    CalibratorConfig result;
    switch (type) {
      case "taylorseer" -> {
        Object order = v.remove("taylorseer_order");
        result = new TaylorSeerCalibratorConfig(hidden, encoder, cacheType,
            order == null ? 1 : ConfigValues.integer("taylorseer_order", order));
      }
      case "foca" -> result = new FoCaCalibratorConfig(hidden, encoder, cacheType);
      default -> throw new ConfigException("calibrator_type", type, "must be taylorseer or foca");
    }
    if (!v.isEmpty()) {
      throw new ConfigException("unknown calibrator setting(s) " + v.keySet() + "; known: calibrator_type, "
          + "enable_calibrator, enable_encoder_calibrator, calibrator_cache_type, taylorseer_order");
    }
    return result;
  }

  private static ParamsModifier modifier(Map<String, Object> entry) {
    CacheConfigOverlay.Builder overlay = CacheConfigOverlay.builder();
    CalibratorConfig calibrator = null;
    for (Map.Entry<String, Object> e : entry.entrySet()) {
      switch (e.getKey()) {
        case "cache_config" -> map(e.getValue(), "cache_config").forEach((k, val) -> overlay.setByKey(k, val, true));
        case "calibrator_config" -> calibrator = calibrator(map(e.getValue(), "calibrator_config"));
        default -> throw new ConfigException("unknown key \"" + e.getKey()
            + "\" in params_modifiers; use cache_config and calibrator_config");
      }
    }
    return new ParamsModifier(overlay.build(), calibrator);
  }

  private static CalibratorCacheType cacheType(Object value) {
    if (value == null) {
      return CalibratorCacheType.RESIDUAL;
    }
    return switch (String.valueOf(value).toLowerCase(Locale.ROOT)) {
      case "residual" -> CalibratorCacheType.RESIDUAL;
      case "hidden_states" -> CalibratorCacheType.HIDDEN_STATES;
      default -> throw new ConfigException("calibrator_cache_type", value, "must be residual or hidden_states");
    };
  }

  @SuppressWarnings("unchecked")
  private static Map<String, Object> map(Object value, String what) {
    if (!(value instanceof Map<?, ?> m)) {
      throw new ConfigException(what + " must be a mapping of keys to values, got " + value);
    }
    return (Map<String, Object>) m;
  }
}
