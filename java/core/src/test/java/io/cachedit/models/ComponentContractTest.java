package io.cachedit.models;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.cachedit.io.SafetensorsFile;
import io.cachedit.models.common.ComponentModel;
import io.cachedit.models.common.ForwardInputs;
import io.cachedit.pipeline.ModelRegistry;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * What every text encoder and VAE class promises, as the transformers' contract test checks for them:
 * built from its config with generated weights, its calls give finite outputs; saved and loaded they
 * give the same bits; loaded in bf16 and fp16 they run near the fp32 numbers; closed, they refuse with
 * an error naming the class.
 */
class ComponentContractTest {
  static final Path FIXTURES = Path.of("src/test/resources");

  @ParameterizedTest(name = "{0}")
  @ValueSource(strings = {"text-encoders/CLIPTextModel", "text-encoders/CLIPTextModelWithProjection",
      "text-encoders/T5EncoderModel", "text-encoders/UMT5EncoderModel", "text-encoders/Qwen3Model",
      "vae/AutoencoderKL", "vae/AutoencoderKLWan"})
  void randomSaveLoadDtypesAndClose(String fixture, @TempDir Path dir) throws Exception {
    Path src = FIXTURES.resolve(fixture);
    String config = Files.readString(src.resolve("config.json"));
    try (PointerScope scope = new PointerScope(); NoGradGuard g = new NoGradGuard();
         SafetensorsFile in = SafetensorsFile.open(src.resolve("inputs.safetensors"))) {
      Map<String, Tensor> all = new LinkedHashMap<>();
      for (String k : in.keys()) {
        all.put(k, in.tensor(k));
      }
      ComponentModel model = (ComponentModel) ModelRegistry.defaults().random(config, 7, ScalarType.Float);
      String call = model.calls().get(0);
      Map<String, Tensor> inputs = call.equals("decode") ? Map.of("z", all.get("z")) : all;
      Map<String, Tensor> out = model.call(call, new ForwardInputs(inputs, Map.of()));
      Tensor first = out.values().iterator().next();
      assertTrue(first.isfinite().all().item_bool(), fixture + ": finite output");
      ModelRegistry.save(model, dir);
      try (ComponentModel loaded = (ComponentModel) ModelRegistry.defaults().load(dir, ScalarType.Float)) {
        assertEquals(model.parameters().keySet(), loaded.parameters().keySet());
        Tensor again = loaded.call(call, new ForwardInputs(inputs, Map.of())).values().iterator().next();
        assertTrue(torch.equal(first, again), fixture + ": save/load round trip exact");
      }
      for (ScalarType low : new ScalarType[] {ScalarType.BFloat16, ScalarType.Half}) {
        try (ComponentModel reduced = (ComponentModel) ModelRegistry.defaults().load(dir, low)) {
          Tensor r = reduced.call(call, new ForwardInputs(inputs, Map.of())).values().iterator().next()
              .to(ScalarType.Float);
          double err = r.sub(first).abs().max().item_double() / first.abs().max().item_double();
          // random weights amplify rounding through the layers more than trained ones do
          assertTrue(err < 0.15 && err > 0, fixture + " " + low + " relative error " + err);
        }
      }
      model.close();
      model.close();  // idempotent
      IllegalStateException e = assertThrows(IllegalStateException.class,
          () -> model.call(call, new ForwardInputs(inputs, Map.of())));
      assertTrue(e.getMessage().contains(model.className()) && e.getMessage().contains("closed"), e.getMessage());
    }
  }
}
