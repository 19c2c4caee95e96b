package io.cachedit.io;

import io.cachedit.error.WeightLoadException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Typed reads of a diffusers {@code config.json}: each getter names the key, applies the default
 * when absent, and rejects a value of the wrong type with the key and file in the message. Keys
 * the model does not know are logged once ({@link #warnUnused}), as diffusers does.
 */
public final class JsonConfig {
  private static final Logger LOG = LoggerFactory.getLogger(JsonConfig.class);
  /**
   * The plausible range of every size key the supported families read (and of each element of the
   * list keys), checked on read, before any model allocates from it: 0 layers or 2^31 of them, a zero
   * or negative width or patch, a sample size past any real model are refused naming the key.
   */
  private static final java.util.Map<String, long[]> RANGES = ranges();

  private static java.util.Map<String, long[]> ranges() {
    java.util.Map<String, long[]> r = new java.util.HashMap<>();
    for (String k : List.of("num_layers", "num_single_layers", "n_layers", "n_refiner_layers")) {
      r.put(k, new long[] {0, 1024});
    }
    for (String k : List.of("num_attention_heads", "n_heads", "n_kv_heads")) {
      r.put(k, new long[] {1, 1024});
    }
    r.put("attention_head_dim", new long[] {1, 4096});
    for (String k : List.of("in_channels", "out_channels")) {
      r.put(k, new long[] {1, 65536});
    }
    for (String k : List.of("joint_attention_dim", "pooled_projection_dim", "caption_projection_dim",
        "caption_channels", "cross_attention_dim", "text_dim", "freq_dim", "ffn_dim", "dim", "cap_feat_dim",
        "image_dim", "added_kv_proj_dim")) {
      r.put(k, new long[] {1, 131072});
    }
    for (String k : List.of("patch_size", "all_patch_size", "all_f_patch_size", "patch_size_t")) {
      r.put(k, new long[] {1, 64});
    }
    for (String k : List.of("sample_size", "pos_embed_max_size", "norm_num_groups")) {
      r.put(k, new long[] {1, 16384});
    }
    for (String k : List.of("rope_max_seq_len", "pos_embed_seq_len", "num_embeds_ada_norm", "axes_lens")) {
      r.put(k, new long[] {1, 1 << 20});
    }
    for (String k : List.of("axes_dims_rope", "axes_dims")) {
      r.put(k, new long[] {0, 4096});
    }
    r.put("dual_attention_layers", new long[] {0, 1023});
    // text encoders (transformers' names) and VAEs
    r.put("vocab_size", new long[] {1, 1 << 24});
    for (String k : List.of("hidden_size", "intermediate_size", "projection_dim", "d_model", "d_kv", "d_ff",
        "latent_channels", "block_out_channels")) {
      r.put(k, new long[] {1, 131072});
    }
    r.put("num_hidden_layers", new long[] {0, 1024});
    r.put("num_heads", new long[] {1, 1024});
    r.put("num_key_value_heads", new long[] {1, 1024});
    r.put("head_dim", new long[] {2, 4096});
    r.put("layers_per_block", new long[] {0, 64});
    r.put("max_position_embeddings", new long[] {1, 1 << 20});
    r.put("relative_attention_num_buckets", new long[] {2, 4096});
    r.put("relative_attention_max_distance", new long[] {1, 1 << 20});
    return java.util.Map.copyOf(r);
  }

  /** The largest config.json read (16 MiB). */
  static final long MAX_BYTES = 16L << 20;

  private final JsonNode root;
  private final String origin;
  private final Set<String> read = new TreeSet<>();

  private JsonConfig(JsonNode root, String origin) {
    this.root = root;
    this.origin = origin;
  }

  public static JsonConfig read(Path file) {
    SafetensorsFile.requireRegularFile(file, "model config");
    try {
      if (Files.size(file) > MAX_BYTES) {  // diffusers configs are kilobytes: never read gigabytes into memory
        throw new WeightLoadException("model config " + file + " has " + Files.size(file) + " bytes; configs are at most "
            + MAX_BYTES);
      }
      return parse(Files.readString(file), file.toString());
    } catch (IOException e) {
      throw new WeightLoadException("cannot read model config " + file + ": " + e.getMessage(), e);
    }
  }

  public static JsonConfig parse(String json, String origin) {
    JsonNode root;
    try {
      // a key given twice is an error, not "the last one wins"
      root = new ObjectMapper().enable(com.fasterxml.jackson.core.JsonParser.Feature.STRICT_DUPLICATE_DETECTION)
          .readTree(json);
    } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
      throw new WeightLoadException("model config " + origin + " is not valid JSON (line "
          + (e.getLocation() == null ? "?" : e.getLocation().getLineNr() + ", column " + e.getLocation().getColumnNr())
          + "): " + e.getOriginalMessage().replaceAll("\\s*\\R\\s*", " "), e);
    } catch (IOException e) {
      throw new WeightLoadException("model config " + origin + " cannot be read: " + e.getMessage(), e);
    }
    if (root == null || !root.isObject()) {
      throw new WeightLoadException("model config " + origin + " must be a JSON object");
    }
    return new JsonConfig(root, origin);
  }

  public String origin() {
    return origin;
  }

  /**
   * {@code _class_name} (diffusers), else {@code architectures[0]} (transformers' config.json), or
   * null.
   */
  public String className() {
    JsonNode n = root.get("_class_name");
    if (n != null && n.isTextual()) {
      return n.asText();
    }
    JsonNode a = root.get("architectures");
    return a != null && a.isArray() && a.size() > 0 && a.get(0).isTextual() ? a.get(0).asText() : null;
  }

  /** The config as read, as JSON text (what a model built from it saves). */
  public String json() {
    return root.toPrettyString();
  }

  private JsonNode node(String key) {
    read.add(key);
    JsonNode n = root.get(key);
    return n == null || n.isNull() ? null : n;
  }

  private WeightLoadException wrong(String key, String type) {
    return new WeightLoadException("model config " + origin + ": " + key + " = " + root.get(key) + " must be " + type);
  }

  /** The JSON text of object {@code key} (e.g. {@code quantization_config}), or null if absent. */
  public String getObjectJson(String key) {
    JsonNode n = node(key);
    if (n == null) {
      return null;
    }
    if (!n.isObject()) {
      throw wrong(key, "an object");
    }
    return n.toString();
  }

  public int getInt(String key, int defaultValue) {
    JsonNode n = node(key);
    if (n == null) {
      return defaultValue;
    }
    if (!n.isIntegralNumber() || !n.canConvertToInt()) {
      throw wrong(key, "an integer");
    }
    return inRange(key, n.asInt());
  }

  /** {@code value} if {@code key} has no known range or it lies in it; otherwise an error naming both. */
  private int inRange(String key, int value) {
    long[] range = RANGES.get(key);
    if (range != null && (value < range[0] || value > range[1])) {
      throw io.cachedit.error.ConfigException.forField(key, "model config " + origin + ": " + key + " = " + value
          + " is out of range; it must be " + range[0] + ".." + range[1]);
    }
    return value;
  }

  public Integer getIntOrNull(String key) {
    JsonNode n = node(key);
    if (n == null) {
      return null;
    }
    if (!n.isIntegralNumber() || !n.canConvertToInt()) {
      throw wrong(key, "an integer");
    }
    return inRange(key, n.asInt());
  }

  public double getDouble(String key, double defaultValue) {
    JsonNode n = node(key);
    if (n == null) {
      return defaultValue;
    }
    if (!n.isNumber()) {
      throw wrong(key, "a number");
    }
    return n.asDouble();
  }

  public boolean getBool(String key, boolean defaultValue) {
    JsonNode n = node(key);
    if (n == null) {
      return defaultValue;
    }
    if (!n.isBoolean()) {
      throw wrong(key, "true or false");
    }
    return n.asBoolean();
  }

  public String getString(String key, String defaultValue) {
    JsonNode n = node(key);
    if (n == null) {
      return defaultValue;
    }
    if (!n.isTextual()) {
      throw wrong(key, "a string");
    }
    return n.asText();
  }

  public int[] getIntArray(String key, int[] defaultValue) {
    JsonNode n = node(key);
    if (n == null) {
      return defaultValue;
    }
    if (!n.isArray()) {
      throw wrong(key, "a list of integers");
    }
    int[] out = new int[n.size()];
    for (int i = 0; i < out.length; i++) {
      if (!n.get(i).isIntegralNumber() || !n.get(i).canConvertToInt()) {
        throw wrong(key, "a list of integers");
      }
      out[i] = inRange(key, n.get(i).asInt());
    }
    return out;
  }

  /** A list of strings (e.g. a VAE's {@code down_block_types}), or the default. */
  public List<String> getStringList(String key, List<String> defaultValue) {
    JsonNode n = node(key);
    if (n == null) {
      return defaultValue;
    }
    if (!n.isArray()) {
      throw wrong(key, "a list of strings");
    }
    List<String> out = new ArrayList<>();
    for (JsonNode e : n) {
      if (!e.isTextual()) {
        throw wrong(key, "a list of strings");
      }
      out.add(e.asText());
    }
    return List.copyOf(out);
  }

  /** The JSON text of list {@code key}, or null if absent. */
  public String getListJson(String key) {
    JsonNode n = node(key);
    if (n == null) {
      return null;
    }
    if (!n.isArray()) {
      throw wrong(key, "a list");
    }
    return n.toString();
  }

  /** Whether {@code key} is present and holds a list. */
  public boolean isList(String key) {
    JsonNode n = root.get(key);
    return n != null && n.isArray();
  }

  /** Logs the keys present but never read (excluding diffusers' bookkeeping keys starting with "_"). */
  public void warnUnused(String model) {
    List<String> unused = new ArrayList<>();
    for (Iterator<String> it = root.fieldNames(); it.hasNext(); ) {
      String k = it.next();
      if (!k.startsWith("_") && !read.contains(k)) {
        unused.add(k);
      }
    }
    if (!unused.isEmpty()) {
      LOG.warn("{}: config keys not used by {}: {}", origin, model, unused);
    }
  }
}
