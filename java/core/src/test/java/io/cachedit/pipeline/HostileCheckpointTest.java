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
}
