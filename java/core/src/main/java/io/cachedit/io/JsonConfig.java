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
    } catch (IOException e) {
      throw new WeightLoadException("model config " + origin + " is not valid JSON: " + e.getMessage(), e);
    }
    if (root == null || !root.isObject()) {
      throw new WeightLoadException("model config " + origin + " must be a JSON object");
    }
    return new JsonConfig(root, origin);
  }

  public String origin() {
    return origin;
  }

  /** {@code _class_name}, or null. */
  public String className() {
    JsonNode n = root.get("_class_name");
    return n == null || !n.isTextual() ? null : n.asText();
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
    return n.asInt();
  }

  public Integer getIntOrNull(String key) {
    JsonNode n = node(key);
    if (n == null) {
      return null;
    }
    if (!n.isIntegralNumber() || !n.canConvertToInt()) {
      throw wrong(key, "an integer");
    }
    return n.asInt();
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
      out[i] = n.get(i).asInt();
    }
    return out;
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
