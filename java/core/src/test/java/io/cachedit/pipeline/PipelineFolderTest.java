package io.cachedit.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.cachedit.error.UnsupportedModelException;
import io.cachedit.error.WeightLoadException;
import io.cachedit.models.TinyConfigs;
import io.cachedit.models.common.DiffusersModel;
import io.cachedit.models.common.DiffusersTransformer;
import io.cachedit.models.common.Transformer;
import io.cachedit.models.flux.FluxTransformer2DModel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The model registry (instances, ServiceLoader providers) and whole pipeline folders (model_index.json). */
class PipelineFolderTest {
  static Path pipelineFolder(Path dir) throws Exception {
    ModelRegistry registry = ModelRegistry.defaults();
    try (DiffusersModel flux = registry.random(TinyConfigs.flux(true), 1, ScalarType.Float);
         DiffusersModel vae = registry.random("{\"_class_name\": \"TinyVae\", \"latent_channels\": 4}", 2,
             ScalarType.Float)) {
      ModelRegistry.save(flux, dir.resolve("transformer"));
      ModelRegistry.save(vae, dir.resolve("vae"));
    }
    Files.createDirectories(dir.resolve("tokenizer"));
    Files.createDirectories(dir.resolve("scheduler"));
    Files.writeString(dir.resolve("scheduler/scheduler_config.json"), """
        {"_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": 1000, "shift": 3.0,
         "use_dynamic_shifting": true, "base_shift": 0.5, "max_shift": 1.15}
        """);
    Files.writeString(dir.resolve(PipelineFolder.INDEX), """
        {"_class_name": "FluxPipeline", "_diffusers_version": "0.35.0",
         "transformer": ["diffusers", "FluxTransformer2DModel"], "vae": ["diffusers", "TinyVae"],
         "tokenizer": ["transformers", "CLIPTokenizer"], "text_encoder_2": [null, null],
         "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"], "force_zeros_for_empty_prompt": true}
        """);
    return dir;
  }

  @Test
  void aPipelineFolderLoadsComponentByComponent(@TempDir Path dir) throws Exception {
    try (PointerScope scope = new PointerScope()) {
      PipelineFolder folder = PipelineFolder.open(pipelineFolder(dir));
      assertEquals("FluxPipeline", folder.pipelineClass());
      assertEquals(List.of("transformer", "vae", "tokenizer", "scheduler"), List.copyOf(folder.components().keySet()));
      assertTrue(folder.settings().get("force_zeros_for_empty_prompt").asBoolean());
      assertFalse(folder.component("text_encoder_2").isPresent(), "a null component is absent");
      ModelRegistry registry = ModelRegistry.defaults();
      try (DiffusersModel vae = folder.load("vae", registry, ScalarType.Float);
           DiffusersModel transformer = folder.load("transformer", registry, ScalarType.BFloat16)) {
        TinyVae tiny = assertInstanceOf(TinyVae.class, vae);
        assertFalse(vae instanceof Transformer, "a VAE is a model without block lists");
        assertEquals(3, tiny.decode(torch.ones(2, 4)).size(1));
        assertInstanceOf(FluxTransformer2DModel.class, transformer);
        assertEquals(ScalarType.BFloat16, transformer.dtype());
      }
      UnsupportedModelException e = assertThrows(UnsupportedModelException.class,
          () -> folder.load("tokenizer", registry, ScalarType.Float));
      assertTrue(e.getMessage().contains("tokenizer") && e.getMessage().contains("CLIPTokenizer")
          && e.getMessage().contains("FluxTransformer2DModel"), e.getMessage());
      assertEquals(1.15, folder.flowMatchScheduler().maxShift());
      WeightLoadException missing = assertThrows(WeightLoadException.class, () -> folder.require("text_encoder"));
      assertTrue(missing.getMessage().contains("text_encoder"), missing.getMessage());
      // the transformer of a pipeline folder also loads directly, as before
      try (DiffusersTransformer t = registry.loadTransformer(dir, ScalarType.Float)) {
        assertEquals("FluxTransformer2DModel", t.className());
      }
    }
  }

  @Test
  void badFolders_nameTheComponent(@TempDir Path dir) throws Exception {
    pipelineFolder(dir);
    Files.writeString(dir.resolve(PipelineFolder.INDEX), Files.readString(dir.resolve(PipelineFolder.INDEX))
        .replace("\"vae\": [\"diffusers\", \"TinyVae\"]", "\"vae\": [\"diffusers\", \"TinyVae\"], "
            + "\"text_encoder\": [\"transformers\", \"CLIPTextModel\"]"));
    WeightLoadException e = assertThrows(WeightLoadException.class, () -> PipelineFolder.open(dir));
    assertTrue(e.getMessage().contains("\"text_encoder\"") && e.getMessage().contains("CLIPTextModel")
        && e.getMessage().contains("missing"), e.getMessage());
    e = assertThrows(WeightLoadException.class, () -> PipelineFolder.open(dir.resolve("vae")));
    assertTrue(e.getMessage().contains(PipelineFolder.INDEX), e.getMessage());
    Files.writeString(dir.resolve(PipelineFolder.INDEX), "{\"vae\": [\"diffusers\"]}");
    e = assertThrows(WeightLoadException.class, () -> PipelineFolder.open(dir));
    assertTrue(e.getMessage().contains("[library, class]"), e.getMessage());
  }

  @Test
  void registries_areInstances_andProvidersComeFromServiceLoader() {
    assertTrue(ModelRegistry.defaults().supports("TinyVae"), "the test provider is found by ServiceLoader");
    ModelRegistry plain = ModelRegistry.builder().builtins().build();
    assertFalse(plain.supports("TinyVae"));
    assertEquals(java.util.List.of("AutoencoderKL", "AutoencoderKLQwenImage", "AutoencoderKLWan", "CLIPTextModel",
        "CLIPTextModelWithProjection", "DiTTransformer2DModel", "FluxTransformer2DModel", "PixArtTransformer2DModel",
        "Qwen2_5_VLForConditionalGeneration", "Qwen3ForCausalLM", "Qwen3Model", "QwenImageTransformer2DModel",
        "SD3Transformer2DModel", "T5EncoderModel", "UMT5EncoderModel", "WanTransformer3DModel",
        "ZImageTransformer2DModel"), plain.supported(), "the transformers, text encoders and VAEs cachedit builds");
    UnsupportedModelException e = assertThrows(UnsupportedModelException.class,
        () -> plain.random("{\"_class_name\": \"TinyVae\"}", 1, ScalarType.Float));
    assertTrue(e.getMessage().contains("TinyVae") && e.getMessage().contains("WanTransformer3DModel"), e.getMessage());
    e = assertThrows(UnsupportedModelException.class,
        () -> ModelRegistry.defaults().randomTransformer("{\"_class_name\": \"TinyVae\"}", 1, ScalarType.Float));
    assertTrue(e.getMessage().contains("not a diffusion transformer"), e.getMessage());
  }
}
