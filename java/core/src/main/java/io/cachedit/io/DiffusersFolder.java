package io.cachedit.io;

import io.cachedit.error.WeightLoadException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.bytedeco.pytorch.Tensor;

/**
 * A model component folder: {@code config.json} plus {@code diffusion_pytorch_model.safetensors}
 * (diffusers) or {@code model.safetensors} (transformers), or shards listed in the matching
 * {@code .safetensors.index.json}. {@link #resolve} also accepts a pipeline folder (using its
 * {@code transformer/} subfolder); both accept a single safetensors file with a {@code config.json}
 * beside it.
 *
 * @param configFile the config.json
 * @param weights the safetensors file or the index file
 */
public record DiffusersFolder(Path configFile, Path weights) {
  public static final String WEIGHTS = "diffusion_pytorch_model.safetensors";
  public static final String INDEX = WEIGHTS + ".index.json";
  /** The transformers library's weight file names (text encoders). */
  public static final String TRANSFORMERS_WEIGHTS = "model.safetensors";
  public static final String TRANSFORMERS_INDEX = TRANSFORMERS_WEIGHTS + ".index.json";

  /** Finds the config and weights of the transformer at {@code path} (a pipeline folder uses {@code transformer/}). */
  public static DiffusersFolder resolve(Path path) {
    if (Files.isDirectory(path) && Files.isRegularFile(path.resolve("transformer/config.json"))) {
      return resolveComponent(path.resolve("transformer"));
    }
    return resolveComponent(path);
  }

  /** Finds the config and weights of the component at {@code path} (a component folder or a safetensors file). */
  public static DiffusersFolder resolveComponent(Path path) {
    if (Files.isRegularFile(path) && path.getFileName().toString().endsWith(".safetensors")) {
      Path config = path.toAbsolutePath().getParent().resolve("config.json");
      if (!Files.isRegularFile(config)) {
        throw new WeightLoadException("no config.json beside " + path + "; a single safetensors file needs the model's "
            + "config.json in the same folder");
      }
      return new DiffusersFolder(config, path);
    }
    if (!Files.isDirectory(path)) {
      throw new WeightLoadException("model path " + path + " is neither a folder nor a .safetensors file");
    }
    Path dir = path;
    Path config = dir.resolve("config.json");
    if (!Files.isRegularFile(config)) {
      throw new WeightLoadException("no config.json in " + dir + " (a model folder needs its config.json)");
    }
    for (String name : new String[] {INDEX, WEIGHTS, TRANSFORMERS_INDEX, TRANSFORMERS_WEIGHTS}) {
      if (Files.isRegularFile(dir.resolve(name))) {
        return new DiffusersFolder(config, dir.resolve(name));
      }
    }
    List<Path> candidates = new ArrayList<>();
    try (Stream<Path> files = Files.list(dir)) {
      files.filter(p -> p.getFileName().toString().endsWith(".safetensors")).forEach(candidates::add);
    } catch (IOException e) {
      throw new WeightLoadException("cannot list " + dir + ": " + e.getMessage(), e);
    }
    if (candidates.size() == 1) {
      return new DiffusersFolder(config, candidates.get(0));
    }
    throw new WeightLoadException("no weights in " + dir + ": expected " + WEIGHTS + ", " + TRANSFORMERS_WEIGHTS
        + " or their .index.json"
        + (candidates.isEmpty() ? "" : " (found several .safetensors files: " + candidates + ")"));
  }

  public JsonConfig config() {
    return JsonConfig.read(configFile);
  }

  /** Opens the weights (validating every file's header). */
  public SafetensorsSource openWeights() {
    return weights.getFileName().toString().endsWith(".index.json") ? SafetensorsSource.index(weights)
        : SafetensorsSource.file(weights);
  }

  /**
   * Saves a model as a diffusers folder: config.json and one safetensors file, or shards of at most
   * {@code maxShardBytes} with an index when the weights are larger.
   */
  public static void save(Path dir, String configJson, Map<String, Tensor> parameters, long maxShardBytes) {
    try {
      Files.createDirectories(dir);
      Files.writeString(dir.resolve("config.json"), configJson);
    } catch (IOException e) {
      throw new WeightLoadException("cannot write " + dir + ": " + e.getMessage(), e);
    }
    List<Map<String, Tensor>> shards = new ArrayList<>();
    Map<String, Tensor> current = new LinkedHashMap<>();
    long bytes = 0;
    for (Map.Entry<String, Tensor> e : parameters.entrySet()) {
      long size = e.getValue().nbytes();
      if (!current.isEmpty() && bytes + size > maxShardBytes) {
        shards.add(current);
        current = new LinkedHashMap<>();
        bytes = 0;
      }
      current.put(e.getKey(), e.getValue());
      bytes += size;
    }
    shards.add(current);
    Map<String, String> meta = Map.of("format", "pt");
    if (shards.size() == 1) {
      SafetensorsWriter.write(dir.resolve(WEIGHTS), shards.get(0), meta);
      return;
    }
    ObjectMapper json = new ObjectMapper();
    ObjectNode index = json.createObjectNode();
    long total = 0;
    ObjectNode map = json.createObjectNode();
    for (int i = 0; i < shards.size(); i++) {
      String name = String.format("diffusion_pytorch_model-%05d-of-%05d.safetensors", i + 1, shards.size());
      SafetensorsWriter.write(dir.resolve(name), shards.get(i), meta);
      for (Map.Entry<String, Tensor> e : shards.get(i).entrySet()) {
        map.put(e.getKey(), name);
        total += e.getValue().nbytes();
      }
    }
    index.putObject("metadata").put("total_size", total);
    index.set("weight_map", map);
    try {
      Files.writeString(dir.resolve(INDEX), json.writerWithDefaultPrettyPrinter().writeValueAsString(index));
    } catch (IOException e) {
      throw new WeightLoadException("cannot write " + dir.resolve(INDEX) + ": " + e.getMessage(), e);
    }
  }
}
