package io.cachedit.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.cachedit.image.Images;
import io.cachedit.io.SafetensorsFile;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code generate}, {@code tokenize} and {@code forward} on diffusers folders end to end: the tiny FLUX
 * folder's PNG equals diffusers' image, token ids equal the Python tokenizer's, a text encoder folder's
 * outputs equal transformers'.
 */
class DiffusersCommandsTest {
  static final Path PIPELINES = Path.of("../diffusers/src/test/resources/pipelines");
  static final Path TOKENIZERS = Path.of("../diffusers/src/test/resources/tokenizers");

  @Test
  void generateWritesTheImageDiffusersMakes(@TempDir Path dir) throws Exception {
    Path png = dir.resolve("cat.png");
    assertEquals(0, Main.run("generate", "--model", PIPELINES.resolve("flux").toString(), "--prompt", "a photo of a cat",
        "--height", "32", "--width", "32", "--steps", "4", "--guidance", "3.5", "--max-sequence-length", "32", "--seed",
        "0", "--out", png.toString(), "--json"));
    Images.Image8 img = Images.readImage(png);
    assertEquals(32, img.width());
    try (PointerScope scope = new PointerScope();
         SafetensorsFile expected = SafetensorsFile.open(PIPELINES.resolve("flux/expected.safetensors"))) {
      Tensor e = expected.tensor("image.0").to(ScalarType.Float).contiguous();
      float[] want = new float[(int) e.numel()];
      new FloatPointer(e.data_ptr_float()).capacity(want.length).get(want);
      int worst = 0;
      for (int i = 0; i < want.length; i++) {
        worst = Math.max(worst, Math.abs(Math.round(want[i] * 255) - img.data()[i]));
      }
      assertTrue(worst <= 1, "8-bit pixels within 1 of diffusers', worst " + worst);
    }
    // caching and --compare run on a pipeline folder too
    assertEquals(0, Main.run("generate", "--model", PIPELINES.resolve("sd3").toString(), "--prompt", "a cat", "--height",
        "32", "--width", "32", "--steps", "6", "--n", "2", "--max-sequence-length", "16", "--cache", "dbcache",
        "--compare", "--out", dir.resolve("sd3.png").toString()));
    assertTrue(Files.isRegularFile(dir.resolve("sd3-compare.png")));
    // flags of diffusers folders are refused for the bundled model
    assertEquals(1, Main.run("generate", "--prompt", "bag", "--height", "32", "--out", dir.resolve("b.png").toString()));
  }

  @Test
  void aWanFolderWritesAnAnimatedGif(@TempDir Path dir) throws Exception {
    Path gif = dir.resolve("walk.gif");
    assertEquals(0, Main.run("generate", "--model", PIPELINES.resolve("wan").toString(), "--prompt", "a cat walking",
        "--height", "32", "--width", "32", "--frames", "5", "--steps", "3", "--max-sequence-length", "32", "--out",
        gif.toString()));
    javax.imageio.ImageReader reader = javax.imageio.ImageIO.getImageReadersByFormatName("gif").next();
    try (javax.imageio.stream.ImageInputStream in = javax.imageio.ImageIO.createImageInputStream(gif.toFile())) {
      reader.setInput(in);
      assertEquals(5, reader.getNumImages(true), "one GIF frame per video frame");
      assertEquals(32, reader.read(0).getWidth());
    } finally {
      reader.dispose();
    }
    // --frames is a video option: refused for an image pipeline, naming it
    assertEquals(1, Main.run("generate", "--model", PIPELINES.resolve("flux").toString(), "--prompt", "x", "--height",
        "16", "--width", "16", "--frames", "5", "--steps", "1", "--out", dir.resolve("x.png").toString()));
  }

  @Test
  void tokenizePrintsThePythonTokenizersIds(@TempDir Path dir) throws Exception {
    JsonNode cases = new ObjectMapper().readTree(Files.readString(TOKENIZERS.resolve("expected.json")));
    List<JsonNode> picked = new ArrayList<>();
    for (JsonNode c : cases) {
      if (c.get("tokenizer").asText().equals("t5-json") && c.get("options").path("padding").asText().equals("max_length")) {
        picked.add(c);
      }
    }
    StringBuilder texts = new StringBuilder();
    for (JsonNode c : picked) {
      texts.append(new ObjectMapper().writeValueAsString(c.get("text"))).append('\n');
    }
    Path file = dir.resolve("texts.jsonl");
    Files.writeString(file, texts);
    String out = capture(() -> Main.run("tokenize", "--model", TOKENIZERS.resolve("t5-json").toString(), "--texts-file",
        file.toString(), "--max-length", "64", "--padding", "max_length", "--truncation", "--json"));
    String[] lines = out.strip().split("\n");
    assertEquals(picked.size(), lines.length);
    for (int i = 0; i < lines.length; i++) {
      JsonNode got = new ObjectMapper().readTree(lines[i]);
      assertEquals(picked.get(i).get("input_ids"), got.get("input_ids"), picked.get(i).get("text").asText());
      assertEquals(picked.get(i).get("attention_mask"), got.get("attention_mask"));
    }
  }

  @Test
  void forwardRunsATextEncoderFolder(@TempDir Path dir) throws Exception {
    Path te = Path.of("../core/src/test/resources/text-encoders/CLIPTextModelWithProjection");
    Files.writeString(dir.resolve("args.json"), "{\"output_hidden_states\": true, \"return_dict\": true}");
    Path out = dir.resolve("out.safetensors");
    assertEquals(0, Main.run("forward", "--model", te.toString(), "--inputs", te.resolve("inputs.safetensors").toString(),
        "--args", dir.resolve("args.json").toString(), "--out", out.toString()));
    try (PointerScope scope = new PointerScope();
         SafetensorsFile got = SafetensorsFile.open(out);
         SafetensorsFile want = SafetensorsFile.open(te.resolve("expected.safetensors"))) {
      for (String k : want.keys()) {
        assertTrue(got.tensor(k).sub(want.tensor(k)).abs().max().item_double() < 2e-5, k);
      }
    }
    assertEquals(1, Main.run("forward", "--model", te.toString(), "--call", "decode", "--inputs",
        te.resolve("inputs.safetensors").toString(), "--out", dir.resolve("x.safetensors").toString()));
  }

  private static String capture(java.util.concurrent.Callable<Integer> run) throws Exception {
    PrintStream old = System.out;
    ByteArrayOutputStream buf = new ByteArrayOutputStream();
    System.setOut(new PrintStream(buf, true, StandardCharsets.UTF_8));
    try {
      assertEquals(0, run.call());
    } finally {
      System.setOut(old);
    }
    return buf.toString(StandardCharsets.UTF_8);
  }
}
