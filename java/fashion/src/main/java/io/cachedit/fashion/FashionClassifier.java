package io.cachedit.fashion;

import io.cachedit.io.SafetensorsFile;
import io.cachedit.io.SafetensorsWriter;
import io.cachedit.error.WeightLoadException;
import io.cachedit.kernels.NativeRuntime;
import io.cachedit.kernels.NativeScope;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.bytedeco.pytorch.Generator;
import org.bytedeco.pytorch.GeneratorOptional;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
import org.bytedeco.pytorch.TensorOptions;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * A plain CNN for Fashion-MNIST, the reference-free judge of generated samples (the role CLIP plays
 * for text-to-image): two 3x3 conv pairs (32, 64 channels) with max-pooling, a 256-wide hidden
 * layer (the penultimate features used for the Frechet distance) and 10 logits. Inputs [B, 1, 28, 28]
 * in [-1, 1]. Owns its weights: close it.
 */
public final class FashionClassifier implements AutoCloseable {
  public static final String CLASS_NAME = "FashionClassifier";
  public static final Path DEFAULT_DIR = Path.of("models", "fashion-classifier");
  public static final int FEATURES = 256;

  /** Parameter names and shapes, in order. */
  static final Map<String, long[]> SHAPES = new LinkedHashMap<>();

  static {
    SHAPES.put("conv1.weight", new long[] {32, 1, 3, 3});
    SHAPES.put("conv1.bias", new long[] {32});
    SHAPES.put("conv2.weight", new long[] {32, 32, 3, 3});
    SHAPES.put("conv2.bias", new long[] {32});
    SHAPES.put("conv3.weight", new long[] {64, 32, 3, 3});
    SHAPES.put("conv3.bias", new long[] {64});
    SHAPES.put("conv4.weight", new long[] {64, 64, 3, 3});
    SHAPES.put("conv4.bias", new long[] {64});
    SHAPES.put("fc1.weight", new long[] {FEATURES, 64 * 7 * 7});
    SHAPES.put("fc1.bias", new long[] {FEATURES});
    SHAPES.put("fc2.weight", new long[] {10, FEATURES});
    SHAPES.put("fc2.bias", new long[] {10});
  }

  private final NativeScope owner = NativeScope.owner("FashionClassifier");
  private final Map<String, Tensor> params;

  /** Keeps its own handles on {@code params} (the caller's may go). */
  private FashionClassifier(Map<String, Tensor> params) {
    Map<String, Tensor> kept = new java.util.LinkedHashMap<>();
    params.forEach((k, v) -> kept.put(k, owner.keep(v)));
    this.params = java.util.Collections.unmodifiableMap(kept);
  }

  /** He-initialised weights, zero biases. */
  public static FashionClassifier random(long seed) {
    NativeRuntime.initialize();
    Generator g = torch.createCPUGenerator(seed);
    Map<String, Tensor> p = new LinkedHashMap<>();
    for (Map.Entry<String, long[]> e : SHAPES.entrySet()) {
      long[] s = e.getValue();
      Tensor t;
      if (s.length == 1) {
        t = torch.zeros(s);
      } else {
        long fanIn = 1;
        for (int i = 1; i < s.length; i++) {
          fanIn *= s[i];
        }
        t = torch.randn(s, new GeneratorOptional(g), new TensorOptions(ScalarType.Float))
            .mul(new Scalar(Math.sqrt(2.0 / fanIn)));
      }
      p.put(e.getKey(), t);
    }
    return new FashionClassifier(p);
  }

  public Map<String, Tensor> parameters() {
    return params;
  }

  private Tensor conv(Tensor x, String name) {
    return torch.relu(torch.conv2d(x, params.get(name + ".weight"), new TensorOptional(params.get(name + ".bias")),
        new long[] {1, 1}, new long[] {1, 1}, new long[] {1, 1}, 1));
  }

  /** Penultimate features [B, 256] (after ReLU). */
  public Tensor features(Tensor x) {
    if (x.dim() != 4 || x.size(1) != 1 || x.size(2) != 28 || x.size(3) != 28) {
      throw new IllegalArgumentException("the classifier takes [B, 1, 28, 28] images, got "
          + java.util.Arrays.toString(x.sizes().vec().get()));
    }
    Tensor h = conv(conv(x.to(ScalarType.Float), "conv1"), "conv2");
    h = torch.max_pool2d(h, new long[] {2, 2});
    h = torch.max_pool2d(conv(conv(h, "conv3"), "conv4"), new long[] {2, 2});
    return torch.relu(torch.linear(h.flatten(1, -1), params.get("fc1.weight"), params.get("fc1.bias")));
  }

  /** Logits [B, 10]. */
  public Tensor logits(Tensor x) {
    return torch.linear(features(x), params.get("fc2.weight"), params.get("fc2.bias"));
  }

  /** Predicted classes [B] of images in [-1, 1], evaluated in batches of 500. */
  public Tensor predict(Tensor x) {
    List<Tensor> parts = new java.util.ArrayList<>();
    for (long i = 0; i < x.size(0); i += 500) {
      parts.add(logits(x.narrow(0, i, Math.min(500, x.size(0) - i))).argmax(new org.bytedeco.pytorch.LongOptional(1L),
          false));
    }
    org.bytedeco.pytorch.TensorVector v = new org.bytedeco.pytorch.TensorVector();
    parts.forEach(v::push_back);
    return torch.cat(v, 0);
  }

  public void save(Path dir, String readme) {
    try {
      Files.createDirectories(dir);
      Files.writeString(dir.resolve("config.json"), "{\n  \"_class_name\": \"" + CLASS_NAME
          + "\",\n  \"classes\": [\"" + String.join("\", \"", FashionMnist.CLASSES) + "\"],\n  \"features\": "
          + FEATURES + "\n}\n");
      SafetensorsWriter.write(dir.resolve("model.safetensors"), params, Map.of("format", "pt"));
      if (readme != null) {
        Files.writeString(dir.resolve("README.md"), readme);
      }
    } catch (IOException e) {
      throw new WeightLoadException("cannot write classifier to " + dir + ": " + e.getMessage(), e);
    }
  }

  public static FashionClassifier load(Path dir) {
    NativeRuntime.initialize();
    Path config = dir.resolve("config.json");
    try {
      if (!Files.readString(config).contains("\"" + CLASS_NAME + "\"")) {
        throw new WeightLoadException(config + ": _class_name must be " + CLASS_NAME);
      }
    } catch (IOException e) {
      throw new WeightLoadException("cannot read classifier config " + config
          + " (the bundled classifier lives in " + DEFAULT_DIR + "): " + e.getMessage(), e);
    }
    Map<String, Tensor> p = new LinkedHashMap<>();
    try (SafetensorsFile f = SafetensorsFile.open(dir.resolve("model.safetensors"))) {
      for (Map.Entry<String, long[]> e : SHAPES.entrySet()) {
        Tensor t = f.tensor(e.getKey());
        if (!java.util.Arrays.equals(t.sizes().vec().get(), e.getValue())) {
          throw new WeightLoadException(dir.resolve("model.safetensors") + ": " + e.getKey() + " has shape "
              + java.util.Arrays.toString(t.sizes().vec().get()) + ", expected " + java.util.Arrays.toString(e.getValue()));
        }
        p.put(e.getKey(), t.to(ScalarType.Float).clone());
      }
    }
    return new FashionClassifier(p);
  }

  @Override
  public void close() {
    owner.close();
  }
}
