package io.cachedit.models;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.cachedit.io.SafetensorsFile;
import io.cachedit.models.common.ComponentModel;
import io.cachedit.models.common.DiffusersModel;
import io.cachedit.models.common.ForwardInputs;
import io.cachedit.pipeline.ModelRegistry;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Text encoders against transformers 5.17: tiny random models saved by it, with the outputs it computes
 * (src/test/python/make_text_encoder_fixtures.py): every output and hidden state within 2e-5.
 */
class TextEncoderParityTest {
  @ParameterizedTest
  @ValueSource(strings = {"CLIPTextModel", "CLIPTextModel-eos", "CLIPTextModelWithProjection", "T5EncoderModel",
      "T5EncoderModel-relu", "UMT5EncoderModel", "Qwen3Model", "Qwen3ForCausalLM"})
  void outputsEqualTransformers(String name) {
    Path dir = Path.of("src/test/resources/text-encoders", name);
    try (PointerScope scope = new PointerScope(); NoGradGuard g = new NoGradGuard();
         DiffusersModel m = ModelRegistry.defaults().load(dir, ScalarType.Float);
         SafetensorsFile in = SafetensorsFile.open(dir.resolve("inputs.safetensors"));
         SafetensorsFile expected = SafetensorsFile.open(dir.resolve("expected.safetensors"))) {
      ComponentModel c = assertInstanceOf(ComponentModel.class, m);
      Map<String, Tensor> tensors = new LinkedHashMap<>();
      for (String k : in.keys()) {
        tensors.put(k, in.tensor(k));
      }
      Map<String, Tensor> out = c.call("forward", new ForwardInputs(tensors, Map.of("output_hidden_states", true)));
      assertEquals(new java.util.TreeSet<>(expected.keys()), new java.util.TreeSet<>(out.keySet()), name);
      for (String k : expected.keys()) {
        Tensor e = expected.tensor(k);
        Tensor o = out.get(k);
        assertEquals(java.util.Arrays.toString(e.sizes().vec().get()), java.util.Arrays.toString(o.sizes().vec().get()),
            name + " " + k);
        double diff = o.sub(e).abs().max().item_double();
        assertTrue(diff < 2e-5, name + " " + k + ": max |diff| " + diff);
      }
    }
  }
}
