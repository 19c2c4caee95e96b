package io.cachedit.diffusers;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.cachedit.io.SafetensorsFile;
import java.nio.file.Files;
import java.nio.file.Path;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Prompt to image against diffusers 0.40.0.dev0: tiny FLUX.1 and SD3 folders with every component
 * (src/test/python/make_pipeline_fixtures.py) generate the images diffusers generates for the same
 * prompts, sizes, steps, guidance, negative prompts, image counts and seeds.
 */
class PipelineParityTest {
  @ParameterizedTest
  @ValueSource(strings = {"flux", "sd3", "zimage", "qwenimage", "wan", "wan22"})
  void imagesEqualDiffusers(String name) throws Exception {
    Path dir = Path.of("src/test/resources/pipelines", name);
    JsonNode runs = new ObjectMapper().readTree(Files.readString(dir.resolve("expected.json")));
    try (TextToImagePipeline p = Pipelines.load(dir);
         SafetensorsFile expected = SafetensorsFile.open(dir.resolve("expected.safetensors"))) {
      for (int i = 0; i < runs.size(); i++) {
        JsonNode run = runs.get(i);
        PromptRequest r = request(run, i, dir);
        GeneratedImages out = p.generate(r);
        try (PointerScope scope = new PointerScope()) {
          Tensor e = expected.tensor("image." + i).to(ScalarType.Float).contiguous();
          float[] want = new float[(int) e.numel()];
          new FloatPointer(e.data_ptr_float()).capacity(want.length).get(want);
          assertEquals(want.length, out.pixels().length, name + " run " + i + " size");
          assertEquals(e.size(1), out.height());
          assertEquals(e.size(2), out.width());
          assertEquals(e.size(0), out.count(), "images (or a video's frames)");
          double max = 0;
          for (int k = 0; k < want.length; k++) {
            max = Math.max(max, Math.abs(want[k] - out.pixels()[k]));
          }
          assertTrue(max < 1e-4, name + " run " + i + " " + run + ": max |diff| " + max);
        }
      }
    }
  }

  static PromptRequest request(JsonNode run, int i, Path dir) {
    long[] seeds = seeds(dir);
    return new PromptRequest(run.get("prompt").asText(), run.has("negative_prompt") ? run.get("negative_prompt").asText()
        : null, run.get("height").asInt(), run.get("width").asInt(), run.get("num_inference_steps").asInt(),
        run.path("guidance_scale").asDouble(), run.path("true_cfg_scale").asDouble(1.0),
        run.path("num_images_per_prompt").asInt(1), seeds[i],
        run.has("max_sequence_length") ? run.get("max_sequence_length").asInt() : null,
        run.has("num_frames") ? run.get("num_frames").asInt() : null);
  }

  /** The seeds of the runs, in make_pipeline_fixtures.py. */
  static long[] seeds(Path dir) {
    return switch (dir.getFileName().toString()) {
      case "flux" -> new long[] {0, 7, 3};
      case "sd3" -> new long[] {0, 11, 5};
      case "zimage" -> new long[] {0, 13, 21};
      case "qwenimage" -> new long[] {0, 17};
      default -> new long[] {0, 9, 4};
    };
  }
}
