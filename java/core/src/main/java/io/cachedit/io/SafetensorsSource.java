package io.cachedit.io;

import io.cachedit.error.WeightLoadException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import org.bytedeco.pytorch.Tensor;

/** Weights from one safetensors file or from shards listed by a {@code .safetensors.index.json}. */
public final class SafetensorsSource implements WeightSource {
  private final List<SafetensorsFile> files;
  private final Map<String, SafetensorsFile> byName;

  private SafetensorsSource(List<SafetensorsFile> files, Map<String, SafetensorsFile> byName) {
    this.files = files;
    this.byName = byName;
  }

  /** One file. */
  public static SafetensorsSource file(Path file) {
    SafetensorsFile f = SafetensorsFile.open(file);
    Map<String, SafetensorsFile> m = new TreeMap<>();
    for (String k : f.keys()) {
      m.put(k, f);
    }
    return new SafetensorsSource(List.of(f), Collections.unmodifiableMap(m));
  }

  /**
   * Shards named by an index file ({@code {"weight_map": {tensor: file}}}); shard names must be plain
   * file names in the index's folder, and every listed tensor must be in its shard.
   */
  public static SafetensorsSource index(Path indexFile) {
    JsonNode root;
    try {
      SafetensorsFile.requireRegularFile(indexFile, "weight index");
      if (Files.size(indexFile) > JsonConfig.MAX_BYTES) {
        throw new WeightLoadException("weight index " + indexFile + " has " + Files.size(indexFile)
            + " bytes; indexes are at most " + JsonConfig.MAX_BYTES);
      }
      root = new ObjectMapper().enable(com.fasterxml.jackson.core.JsonParser.Feature.STRICT_DUPLICATE_DETECTION)
          .readTree(Files.readString(indexFile));
    } catch (IOException e) {
      throw new WeightLoadException("cannot read weight index " + indexFile + ": " + e.getMessage(), e);
    }
    JsonNode map = root == null ? null : root.get("weight_map");
    if (map == null || !map.isObject()) {
      throw new WeightLoadException("weight index " + indexFile + " has no weight_map object");
    }
    Path dir = indexFile.toAbsolutePath().getParent();
    Map<String, SafetensorsFile> shards = new LinkedHashMap<>();
    Map<String, SafetensorsFile> byName = new TreeMap<>();
    List<SafetensorsFile> opened = new ArrayList<>();
    try {
      for (Iterator<Map.Entry<String, JsonNode>> it = map.fields(); it.hasNext(); ) {
        Map.Entry<String, JsonNode> e = it.next();
        String shardName = e.getValue().asText("");
        if (!e.getValue().isTextual() || shardName.isEmpty() || shardName.contains("/") || shardName.contains("\\")
            || shardName.equals("..") || shardName.equals(".")) {
          throw new WeightLoadException("weight index " + indexFile + " maps " + e.getKey()
              + " to an invalid shard name " + e.getValue() + " (plain file names in the same folder only)");
        }
        SafetensorsFile shard = shards.get(shardName);
        if (shard == null) {
          shard = SafetensorsFile.open(dir.resolve(shardName));
          shards.put(shardName, shard);
          opened.add(shard);
        }
        if (shard.entry(e.getKey()) == null) {
          throw new WeightLoadException("weight index " + indexFile + " says " + e.getKey() + " is in " + shardName
              + " but that file does not contain it");
        }
        byName.put(e.getKey(), shard);
      }
    } catch (RuntimeException e) {
      opened.forEach(SafetensorsFile::close);
      throw e;
    }
    return new SafetensorsSource(opened, Collections.unmodifiableMap(byName));
  }

  @Override
  public List<Path> files() {
    return files.stream().map(SafetensorsFile::path).toList();
  }

  @Override
  public Set<String> keys() {
    return byName.keySet();
  }

  @Override
  public long[] shape(String name) {
    SafetensorsFile f = byName.get(name);
    return f == null ? null : f.entry(name).shape();
  }

  /** The stored dtype of a tensor, or null. */
  public SafetensorsDType dtype(String name) {
    SafetensorsFile f = byName.get(name);
    return f == null ? null : f.entry(name).dtype();
  }

  @Override
  public Tensor load(String name) {
    SafetensorsFile f = byName.get(name);
    if (f == null) {
      throw new WeightLoadException("no tensor " + name + " in " + files.get(0).path().getParent());
    }
    return f.tensor(name);
  }

  @Override
  public String origin(String name) {
    SafetensorsFile f = byName.get(name);
    return f == null ? "?" : f.path().getFileName().toString();
  }

  @Override
  public void close() {
    files.forEach(SafetensorsFile::close);
  }
}
