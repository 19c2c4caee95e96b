package io.cachedit.pipeline;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.cachedit.error.WeightLoadException;
import io.cachedit.io.SafetensorsFile;
import io.cachedit.io.SafetensorsWriter;
import io.cachedit.models.TinyConfigs;
import io.cachedit.models.common.DiffusersTransformer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Checkpoints that parse but do not describe a model: refused, naming the file and the tensor or key. */
class HostileCheckpointTest {
  static Path saved(Path dir) {
    try (PointerScope s = new PointerScope();
         DiffusersTransformer m = ModelRegistry.defaults().randomTransformer(TinyConfigs.flux(false), 1, ScalarType.Float)) {
      ModelRegistry.save(m, dir);
    }
    return dir;
  }

  @Test
  void anIntegerTensorForAFloatParameterIsRefused(@TempDir Path dir) throws Exception {
    saved(dir);
    Path file = dir.resolve("diffusion_pytorch_model.safetensors");
    String key = "transformer_blocks.0.attn.to_q.weight";
    try (PointerScope s = new PointerScope()) {
      Map<String, Tensor> tensors = new LinkedHashMap<>();
      try (SafetensorsFile f = SafetensorsFile.open(file)) {
        for (String k : f.keys()) {
          tensors.put(k, f.tensor(k).clone());
        }
      }
      tensors.put(key, tensors.get(key).mul(new org.bytedeco.pytorch.Scalar(100)).to(ScalarType.Int));
      SafetensorsWriter.write(file, tensors, Map.of());
    }
    WeightLoadException e = assertThrows(WeightLoadException.class,
        () -> ModelRegistry.defaults().loadTransformer(dir, ScalarType.Float));
    assertTrue(e.getMessage().contains(key) && e.getMessage().contains("Int")
        && e.getMessage().contains(file.getFileName().toString()),
        e.getMessage());
  }

  @Test
  void aConfigKeyGivenTwiceIsRefused(@TempDir Path dir) throws Exception {
    saved(dir);
    Path config = dir.resolve("config.json");
    String json = Files.readString(config);
    Files.writeString(config, json.replaceFirst("\\{", "{\"num_layers\": 1000000, "));
    WeightLoadException e = assertThrows(WeightLoadException.class,
        () -> ModelRegistry.defaults().loadTransformer(dir, ScalarType.Float));
    assertTrue(e.getMessage().contains("num_layers") && e.getMessage().contains(config.toString()), e.getMessage());
  }

  /** A safetensors file of one F32 tensor "w" [2] with the given header text (padded as given) and data bytes. */
  private static Path raw(Path dir, String header, int dataBytes) throws Exception {
    byte[] h = header.getBytes(java.nio.charset.StandardCharsets.UTF_8);
    java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(8 + h.length + dataBytes).order(java.nio.ByteOrder.LITTLE_ENDIAN);
    b.putLong(h.length).put(h);
    Path f = dir.resolve("w.safetensors");
    Files.write(f, b.array());
    return f;
  }

  @Test
  void headerLengthsAndTrailingBytesThatDoNotAddUpAreRefused(@TempDir Path dir) throws Exception {
    String entry = "{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}";
    // well-formed (space padding is allowed) opens
    try (SafetensorsFile f = SafetensorsFile.open(raw(dir, entry + "   ", 8))) {
      assertTrue(f.keys().contains("w"));
    }
    // eight data bytes appended after the tensor: not covered by any tensor
    WeightLoadException appended = assertThrows(WeightLoadException.class,
        () -> SafetensorsFile.open(raw(dir, entry, 16)));
    assertTrue(appended.getMessage().contains("cover 8 bytes of a 16-byte data section"), appended.getMessage());
    // garbage after the JSON object inside the header
    WeightLoadException garbage = assertThrows(WeightLoadException.class,
        () -> SafetensorsFile.open(raw(dir, entry + "xyz", 8)));
    assertTrue(garbage.getMessage().contains("w.safetensors") && garbage.getMessage().contains("JSON"),
        garbage.getMessage());
    // a header length one byte short of the padded header: the last pad byte becomes data
    Path f = raw(dir, entry + " ", 8);
    byte[] bytes = Files.readAllBytes(f);
    java.nio.ByteBuffer.wrap(bytes).order(java.nio.ByteOrder.LITTLE_ENDIAN).putLong(0, entry.length());
    Files.write(f, bytes);
    WeightLoadException shorter = assertThrows(WeightLoadException.class, () -> SafetensorsFile.open(f));
    assertTrue(shorter.getMessage().contains("data section"), shorter.getMessage());
    // a gap before a tensor
    WeightLoadException gap = assertThrows(WeightLoadException.class, () -> SafetensorsFile.open(raw(dir,
        "{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [8, 16]}}", 16)));
    assertTrue(gap.getMessage().contains("belong to no tensor"), gap.getMessage());
  }

  private static void rewrite(Path file, String key, java.util.function.UnaryOperator<Tensor> change) {
    try (PointerScope s = new PointerScope()) {
      Map<String, Tensor> tensors = new LinkedHashMap<>();
      try (SafetensorsFile f = SafetensorsFile.open(file)) {
        for (String k : f.keys()) {
          tensors.put(k, f.tensor(k).clone());
        }
      }
      tensors.put(key, change.apply(tensors.get(key)));
      SafetensorsWriter.write(file, tensors, Map.of());
    }
  }

  @Test
  void nonFiniteWeightsAreNamedAtLoadUnlessTheCheckIsOff(@TempDir Path dir) {
    saved(dir);
    Path file = dir.resolve("diffusion_pytorch_model.safetensors");
    String key = "single_transformer_blocks.1.proj_out.weight";
    rewrite(file, key, t -> {
      Tensor c = t.clone();
      c.view(-1).narrow(0, 3, 1).fill_(new org.bytedeco.pytorch.Scalar(Double.NaN));
      return c;
    });
    WeightLoadException e = assertThrows(WeightLoadException.class,
        () -> ModelRegistry.defaults().loadTransformer(dir, ScalarType.Float));
    assertTrue(e.getMessage().contains("NaN") && e.getMessage().contains(key), e.getMessage());
    System.setProperty("cachedit.checkFinite", "false");
    try (PointerScope s = new PointerScope();
         DiffusersTransformer m = ModelRegistry.defaults().loadTransformer(dir, ScalarType.Float)) {
      assertTrue(m.parameters().containsKey(key), "the opt-out loads it");
    } finally {
      System.clearProperty("cachedit.checkFinite");
    }
  }

  @Test
  void aWeightFileChangedUnderALoadedModelStopsTheNextGeneration(@TempDir Path dir) throws Exception {
    saved(dir);
    Path file = dir.resolve("diffusion_pytorch_model.safetensors");
    try (PointerScope s = new PointerScope();
         io.cachedit.models.flux.FluxTransformer2DModel m = (io.cachedit.models.flux.FluxTransformer2DModel)
             ModelRegistry.defaults().loadTransformer(dir, ScalarType.Float)) {
      FluxPipeline p = new FluxPipeline(m, FlowMatchEulerScheduler.flux());
      Tensor prompt = torch.randn(1, 5, 12);
      Tensor pooled = torch.randn(1, 6);
      FluxPipeline.Request r = new FluxPipeline.Request(prompt, pooled, null, null, 32, 32, 2, 3.5, 1.0, false, 1, 1);
      try (org.bytedeco.pytorch.NoGradGuard g = new org.bytedeco.pytorch.NoGradGuard()) {
        p.generate(r, null);
        Files.setLastModifiedTime(file, java.nio.file.attribute.FileTime.fromMillis(
            Files.getLastModifiedTime(file).toMillis() + 5000));  // as an overwrite in place would
        WeightLoadException e = assertThrows(WeightLoadException.class, () -> p.generate(r, null));
        assertTrue(e.getMessage().contains(file.toString()) && e.getMessage().contains("changed on disk")
            && e.getMessage().contains("cachedit.weights=memory"), e.getMessage());
        assertTrue(!p.generating(), "the refused generation released the pipeline");
      }
    }
    System.setProperty("cachedit.weights", "memory");
    try (PointerScope s = new PointerScope();
         io.cachedit.models.flux.FluxTransformer2DModel m = (io.cachedit.models.flux.FluxTransformer2DModel)
             ModelRegistry.defaults().loadTransformer(dir, ScalarType.Float)) {
      Files.setLastModifiedTime(file, java.nio.file.attribute.FileTime.fromMillis(
          Files.getLastModifiedTime(file).toMillis() + 5000));
      m.checkWeightsUnchanged();  // a private copy: the file may change
    } finally {
      System.clearProperty("cachedit.weights");
    }
  }
}
