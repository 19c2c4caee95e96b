package io.cachedit.pipeline;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.cachedit.error.UnsupportedModelException;
import io.cachedit.error.WeightLoadException;
import io.cachedit.io.JsonConfig;
import io.cachedit.models.common.DiffusersModel;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * A whole diffusers pipeline folder, as {@code DiffusionPipeline.from_pretrained} reads it:
 * {@code model_index.json} names the pipeline class and each component ({@code "vae": ["diffusers",
 * "AutoencoderKL"]}), every component lives in the subfolder of its name, and the other entries are
 * pipeline settings. Opening checks the index and that every named component's folder exists; models
 * are loaded one component at a time through a {@link ModelRegistry}, so text encoders can be loaded,
 * used and closed before the transformer is.
 */
public final class PipelineFolder {
  /** The index file of a pipeline folder. */
  public static final String INDEX = "model_index.json";

  /**
   * One component named by the index.
   *
   * @param name the component (and subfolder) name, e.g. {@code text_encoder_2}
   * @param library {@code diffusers}, {@code transformers}, or another library name
   * @param className the component's class in that library
   * @param dir its folder
   */
  public record Component(String name, String library, String className, Path dir) {}

  private final Path dir;
  private final String pipelineClass;
  private final Map<String, Component> components;
  private final Map<String, JsonNode> settings;

  private PipelineFolder(Path dir, String pipelineClass, Map<String, Component> components,
      Map<String, JsonNode> settings) {
    this.dir = dir;
    this.pipelineClass = pipelineClass;
    this.components = Collections.unmodifiableMap(components);
    this.settings = Collections.unmodifiableMap(settings);
  }

  /** Whether {@code dir} holds a {@code model_index.json}. */
  public static boolean isPipelineFolder(Path dir) {
    return Files.isRegularFile(dir.resolve(INDEX));
  }

  /** Reads and checks {@code dir/model_index.json}; errors name the file, the component and the fix. */
  public static PipelineFolder open(Path dir) {
    Path index = dir.resolve(INDEX);
    if (!Files.isRegularFile(index)) {
      throw new WeightLoadException(dir + " is not a diffusers pipeline folder: it has no " + INDEX);
    }
    JsonNode root;
    try {
      root = new ObjectMapper().readTree(Files.readString(index));
    } catch (IOException e) {
      throw new WeightLoadException(index + " is not valid JSON: " + e.getMessage(), e);
    }
    if (root == null || !root.isObject()) {
      throw new WeightLoadException(index + " must hold a JSON object");
    }
    String pipelineClass = root.path("_class_name").isTextual() ? root.get("_class_name").asText() : null;
    Map<String, Component> components = new LinkedHashMap<>();
    Map<String, JsonNode> settings = new LinkedHashMap<>();
    for (Iterator<Map.Entry<String, JsonNode>> it = root.fields(); it.hasNext(); ) {
      Map.Entry<String, JsonNode> e = it.next();
      String name = e.getKey();
      JsonNode v = e.getValue();
      if (name.startsWith("_")) {
        continue;
      }
      if (!v.isArray()) {
        settings.put(name, v);
        continue;
      }
      if (v.size() != 2) {
        throw new WeightLoadException(index + ": component \"" + name + "\" must be [library, class], got " + v);
      }
      if (v.get(0).isNull() || v.get(1).isNull()) {
        continue;  // an optional component the pipeline runs without
      }
      if (!v.get(0).isTextual() || !v.get(1).isTextual()) {
        throw new WeightLoadException(index + ": component \"" + name + "\" must be [library, class] strings, got " + v);
      }
      Path sub = dir.resolve(name);
      if (!Files.isDirectory(sub)) {
        throw new WeightLoadException(index + " names component \"" + name + "\" (" + v.get(0).asText() + " "
            + v.get(1).asText() + ") but " + sub + " is missing; copy the whole pipeline folder");
      }
      components.put(name, new Component(name, v.get(0).asText(), v.get(1).asText(), sub));
    }
    return new PipelineFolder(dir, pipelineClass, components, settings);
  }

  public Path dir() {
    return dir;
  }

  /** The index's {@code _class_name} (e.g. {@code FluxPipeline}), or null. */
  public String pipelineClass() {
    return pipelineClass;
  }

  /** The components the index names (optional ones set to null left out), in index order. */
  public Map<String, Component> components() {
    return components;
  }

  public Optional<Component> component(String name) {
    return Optional.ofNullable(components.get(name));
  }

  /** The component {@code name}, or an error naming what the index has. */
  public Component require(String name) {
    Component c = components.get(name);
    if (c == null) {
      throw new WeightLoadException(dir.resolve(INDEX) + " has no component \"" + name + "\"; it has "
          + components.keySet());
    }
    return c;
  }

  /** The index's entries that are not components (pipeline settings such as {@code vae_scale_factor}). */
  public Map<String, JsonNode> settings() {
    return settings;
  }

  /** Loads component {@code name} through {@code registry}, converting weights to {@code dtype}. */
  public DiffusersModel load(String name, ModelRegistry registry, ScalarType dtype) {
    Component c = require(name);
    if (!registry.supports(c.className())) {
      throw new UnsupportedModelException("component \"" + name + "\" of " + dir + " is a " + c.library() + " "
          + c.className() + ", which cachedit cannot load; it loads " + registry.supported());
    }
    return registry.load(c.dir(), dtype);
  }

  /** The scheduler's config ({@code scheduler/scheduler_config.json}). */
  public JsonConfig schedulerConfig() {
    Component c = require("scheduler");
    Path file = c.dir().resolve("scheduler_config.json");
    if (!Files.isRegularFile(file)) {
      throw new WeightLoadException("no scheduler_config.json in " + c.dir());
    }
    return JsonConfig.read(file);
  }

  /** The flow-matching Euler scheduler the folder configures (FLUX, SD3, Qwen-Image, Z-Image, Wan). */
  public FlowMatchEulerScheduler flowMatchScheduler() {
    Component c = require("scheduler");
    if (!"FlowMatchEulerDiscreteScheduler".equals(c.className())) {
      throw new UnsupportedModelException("the scheduler of " + dir + " is " + c.className()
          + "; cachedit's pipelines run FlowMatchEulerDiscreteScheduler");
    }
    return FlowMatchEulerScheduler.fromJson(schedulerConfig());
  }

  @Override
  public String toString() {
    return dir + " (" + pipelineClass + ": " + components.keySet() + ")";
  }
}
