package io.cachedit.quant;

import io.cachedit.error.ConfigException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;

/**
 * What {@code CacheDit.quantize} does, with the reference's {@code QuantizeConfig} fields and
 * defaults (docs/quantization.md):
 *
 * <pre>
 * quantize_config:
 *   quant_type: float8_per_row            # see QuantType
 *   exclude_layers: [embedder, embed, modulation, mod]   # substrings of layer names
 *   regional_quantize: true               # only layers inside the repeated blocks
 *   repeated_blocks: []                   # block-list names; empty = the transformer's block lists
 *   components_to_quantize: null          # [transformer] or {transformer: {quant_type: ..., exclude_layers: [...]}}
 *   per_tensor_fallback: true             # a layer the type cannot take falls back to per-tensor int8/fp8
 *   precision_plan: null                  # {layer substring: quant_type}, first match wins
 *   group_size: 32                        # int4 inputs per scale (32 or 128 typically)
 *   serialize_to: null                    # a folder to save the quantised model to
 * </pre>
 *
 * @param quantType the type of every quantised layer unless the precision plan says otherwise
 * @param excludeLayers layers whose name contains one of these are kept dense
 * @param regionalQuantize quantise only layers inside the repeated blocks
 * @param repeatedBlocks block lists counted as repeated blocks; empty: every block list of the model
 * @param componentsToQuantize pipeline components to quantise, each with optional overrides; null:
 *     every transformer of a pipeline
 * @param perTensorFallback give layers the type cannot take a per-tensor type instead of failing
 * @param precisionPlan per-layer types by name substring, first match wins
 * @param groupSize inputs per int4 scale: an even divisor of 512
 * @param serializeTo where to save the quantised model, or null
 * @param verbose log every layer's decision
 */
public record QuantizeConfig(QuantType quantType, List<String> excludeLayers, boolean regionalQuantize,
    List<String> repeatedBlocks, Map<String, Component> componentsToQuantize, boolean perTensorFallback,
    Map<String, QuantType> precisionPlan, int groupSize, Path serializeTo, boolean verbose) {

  /** The reference's default exclusions: embedders and modulations stay dense. */
  public static final List<String> DEFAULT_EXCLUDE_LAYERS = List.of("embedder", "embed", "modulation", "mod");

  /**
   * Overrides for one pipeline component.
   *
   * @param quantType its type, or null for the config's
   * @param excludeLayers its exclusions, or null for the config's
   */
  public record Component(QuantType quantType, List<String> excludeLayers) {
    public Component {
      excludeLayers = excludeLayers == null ? null : List.copyOf(excludeLayers);
    }
  }

  public QuantizeConfig {
    Objects.requireNonNull(quantType, "quant_type");
    excludeLayers = excludeLayers == null ? DEFAULT_EXCLUDE_LAYERS : List.copyOf(excludeLayers);
    repeatedBlocks = repeatedBlocks == null ? List.of() : List.copyOf(repeatedBlocks);
    componentsToQuantize = componentsToQuantize == null ? null
        : java.util.Collections.unmodifiableMap(new LinkedHashMap<>(componentsToQuantize));
    precisionPlan = precisionPlan == null ? Map.of()
        : java.util.Collections.unmodifiableMap(new LinkedHashMap<>(precisionPlan));
    checkGroupSize(groupSize);
    for (String e : excludeLayers) {
      if (e == null || e.isEmpty()) {
        throw ConfigException.forField("exclude_layers", "exclude_layers entries must be non-empty substrings");
      }
    }
  }

  /** The reference defaults with {@code type}. */
  public static QuantizeConfig of(QuantType type) {
    return new QuantizeConfig(type, null, true, null, null, true, null, 32, null, false);
  }

  /** The reference defaults ({@code float8_per_row}). */
  public static QuantizeConfig defaults() {
    return of(QuantType.FLOAT8_PER_ROW);
  }

  public QuantizeConfig withQuantType(QuantType type) {
    return new QuantizeConfig(type, excludeLayers, regionalQuantize, repeatedBlocks, componentsToQuantize,
        perTensorFallback, precisionPlan, groupSize, serializeTo, verbose);
  }

  public QuantizeConfig withExcludeLayers(List<String> layers) {
    return new QuantizeConfig(quantType, layers, regionalQuantize, repeatedBlocks, componentsToQuantize,
        perTensorFallback, precisionPlan, groupSize, serializeTo, verbose);
  }

  public QuantizeConfig withRegionalQuantize(boolean regional) {
    return new QuantizeConfig(quantType, excludeLayers, regional, repeatedBlocks, componentsToQuantize,
        perTensorFallback, precisionPlan, groupSize, serializeTo, verbose);
  }

  public QuantizeConfig withRepeatedBlocks(List<String> lists) {
    return new QuantizeConfig(quantType, excludeLayers, regionalQuantize, lists, componentsToQuantize,
        perTensorFallback, precisionPlan, groupSize, serializeTo, verbose);
  }

  public QuantizeConfig withVerbose(boolean log) {
    return new QuantizeConfig(quantType, excludeLayers, regionalQuantize, repeatedBlocks, componentsToQuantize,
        perTensorFallback, precisionPlan, groupSize, serializeTo, log);
  }

  public QuantizeConfig withPerTensorFallback(boolean fallback) {
    return new QuantizeConfig(quantType, excludeLayers, regionalQuantize, repeatedBlocks, componentsToQuantize,
        fallback, precisionPlan, groupSize, serializeTo, verbose);
  }

  public QuantizeConfig withPrecisionPlan(Map<String, QuantType> plan) {
    return new QuantizeConfig(quantType, excludeLayers, regionalQuantize, repeatedBlocks, componentsToQuantize,
        perTensorFallback, plan, groupSize, serializeTo, verbose);
  }

  public QuantizeConfig withGroupSize(int size) {
    return new QuantizeConfig(quantType, excludeLayers, regionalQuantize, repeatedBlocks, componentsToQuantize,
        perTensorFallback, precisionPlan, size, serializeTo, verbose);
  }

  public QuantizeConfig withSerializeTo(Path dir) {
    return new QuantizeConfig(quantType, excludeLayers, regionalQuantize, repeatedBlocks, componentsToQuantize,
        perTensorFallback, precisionPlan, groupSize, dir, verbose);
  }

  public QuantizeConfig withComponents(Map<String, Component> components) {
    return new QuantizeConfig(quantType, excludeLayers, regionalQuantize, repeatedBlocks, components,
        perTensorFallback, precisionPlan, groupSize, serializeTo, verbose);
  }

  /** Throws unless {@code size} is an even divisor of 512. */
  static void checkGroupSize(int size) {
    if (size < 2 || size % 2 != 0 || 512 % size != 0) {
      throw ConfigException.forField("group_size", "group_size must be an even divisor of 512 (2, 4, 8, 16, 32, 64, "
          + "128, 256 or 512), got " + size);
    }
  }

  /**
   * Reads a {@code quantize_config} section (YAML/JSON already parsed). Unknown keys are errors; the
   * reference's keys cachedit has no counterpart for are accepted at their defaults only.
   */
  public static QuantizeConfig fromMap(Map<String, Object> doc) {
    QuantizeConfig c = defaults();
    for (Map.Entry<String, Object> e : doc.entrySet()) {
      String key = e.getKey();
      Object v = e.getValue();
      switch (key) {
        case "quant_type" -> c = c.withQuantType(QuantType.of(string(v, key), key));
        case "exclude_layers" -> c = c.withExcludeLayers(v == null ? List.of() : strings(v, key));
        case "regional_quantize" -> c = c.withRegionalQuantize(bool(v, key));
        case "repeated_blocks" -> c = c.withRepeatedBlocks(v == null ? List.of() : strings(v, key));
        case "components_to_quantize" -> c = c.withComponents(v == null ? null : components(v, key));
        case "per_tensor_fallback" -> c = c.withPerTensorFallback(bool(v, key));
        case "precision_plan" -> c = c.withPrecisionPlan(v == null ? null : plan(v, key));
        case "group_size" -> c = c.withGroupSize(integer(v, key));
        case "serialize_to" -> c = c.withSerializeTo(v == null ? null : Path.of(string(v, key)));
        case "verbose" -> c = c.withVerbose(bool(v, key));
        case "backend" -> {
          String b = v == null ? "auto" : string(v, key).toLowerCase(Locale.ROOT);
          if (!b.equals("auto") && !b.equals("cache_dit") && !b.equals("cachedit")) {
            throw ConfigException.forField(key, "backend \"" + v + "\" is not available: cachedit quantises with its "
                + "own kernels (backend: auto)");
          }
        }
        case "filter_fn", "calibrate_fn", "svdq_kwargs" -> {
          if (v != null) {
            throw ConfigException.forField(key, key + " is not supported by cachedit; remove it (or set it to null)");
          }
        }
        default -> throw ConfigException.forField(key, "unknown quantize_config key \"" + key + "\"; known keys: "
            + "quant_type, exclude_layers, regional_quantize, repeated_blocks, components_to_quantize, "
            + "per_tensor_fallback, precision_plan, group_size, serialize_to, verbose");
      }
    }
    return c;
  }

  private static Map<String, Component> components(Object v, String key) {
    Map<String, Component> out = new LinkedHashMap<>();
    if (v instanceof List<?> list) {
      for (Object name : list) {
        out.put(string(name, key), new Component(null, null));
      }
      return out;
    }
    if (!(v instanceof Map<?, ?> map)) {
      throw ConfigException.forField(key, key + " must be a list of component names or a map of name -> "
          + "{quant_type, exclude_layers}");
    }
    for (Map.Entry<?, ?> e : map.entrySet()) {
      String name = String.valueOf(e.getKey());
      String field = key + "." + name;
      if (e.getValue() == null) {
        out.put(name, new Component(null, null));
        continue;
      }
      if (!(e.getValue() instanceof Map<?, ?> o)) {
        throw ConfigException.forField(field, field + " must be {quant_type: ..., exclude_layers: [...]}");
      }
      QuantType type = null;
      List<String> exclude = null;
      for (Map.Entry<?, ?> f : o.entrySet()) {
        String k = String.valueOf(f.getKey());
        switch (k) {
          case "quant_type" -> type = QuantType.of(string(f.getValue(), field + ".quant_type"), field + ".quant_type");
          case "exclude_layers" -> exclude = f.getValue() == null ? List.of() : strings(f.getValue(), field + "." + k);
          default -> throw ConfigException.forField(field + "." + k, "unknown key \"" + k + "\" for a component; "
              + "known: quant_type, exclude_layers");
        }
      }
      out.put(name, new Component(type, exclude));
    }
    return out;
  }

  private static Map<String, QuantType> plan(Object v, String key) {
    if (!(v instanceof Map<?, ?> map)) {
      throw ConfigException.forField(key, key + " must map layer-name substrings to quant types");
    }
    Map<String, QuantType> out = new LinkedHashMap<>();
    for (Map.Entry<?, ?> e : map.entrySet()) {
      String sub = String.valueOf(e.getKey());
      if (sub.isEmpty()) {
        throw ConfigException.forField(key, key + " keys must be non-empty layer-name substrings");
      }
      out.put(sub, QuantType.of(string(e.getValue(), key + "." + sub), key + "." + sub));
    }
    return out;
  }

  private static String string(Object v, String key) {
    if (!(v instanceof String s)) {
      throw ConfigException.forField(key, key + " must be a string, got " + describe(v));
    }
    return s;
  }

  private static List<String> strings(Object v, String key) {
    if (v instanceof String s) {
      return List.of(s);
    }
    if (!(v instanceof List<?> list)) {
      throw ConfigException.forField(key, key + " must be a list of strings, got " + describe(v));
    }
    List<String> out = new ArrayList<>();
    for (Object o : list) {
      out.add(string(o, key));
    }
    return out;
  }

  private static boolean bool(Object v, String key) {
    if (!(v instanceof Boolean b)) {
      throw ConfigException.forField(key, key + " must be true or false, got " + describe(v));
    }
    return b;
  }

  private static int integer(Object v, String key) {
    if (!(v instanceof Integer i)) {
      throw ConfigException.forField(key, key + " must be an integer, got " + describe(v));
    }
    return i;
  }

  private static String describe(Object v) {
    return v == null ? "null" : v.getClass().getSimpleName().toLowerCase(Locale.ROOT) + " " + v;
  }
}
