package io.cachedit.diffusers;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.cachedit.diffusers.text.TextTokenizer;
import io.cachedit.error.CacheDitException;
import io.cachedit.error.UnsupportedModelException;
import io.cachedit.error.WeightLoadException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Bad folders and requests get one clear error naming the component, file or field. */
class PipelineLoadErrorsTest {
  static final Path FLUX = Path.of("src/test/resources/pipelines/flux");

  static Path copy(Path from, Path to) throws IOException {
    try (Stream<Path> files = Files.walk(from)) {
      for (Path p : (Iterable<Path>) files::iterator) {
        Path t = to.resolve(from.relativize(p).toString());
        if (Files.isDirectory(p)) {
          Files.createDirectories(t);
        } else {
          Files.copy(p, t);
        }
      }
    }
    return to;
  }

  @Test
  void aMissingComponentIsNamed(@TempDir Path tmp) throws IOException {
    Path dir = copy(FLUX, tmp.resolve("flux"));
    try (Stream<Path> vae = Files.walk(dir.resolve("vae"))) {
      vae.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
    }
    WeightLoadException e = assertThrows(WeightLoadException.class, () -> Pipelines.load(dir));
    assertTrue(e.getMessage().contains("\"vae\"") && e.getMessage().contains("missing"), e.getMessage());
  }

  @Test
  void aComponentOfAnUnknownClassIsNamed(@TempDir Path tmp) throws IOException {
    Path dir = copy(FLUX, tmp.resolve("flux"));
    Path index = dir.resolve("model_index.json");
    Files.writeString(index, Files.readString(index).replace("\"AutoencoderKL\"", "\"AutoencoderTiny\""));
    Files.writeString(dir.resolve("vae/config.json"), Files.readString(dir.resolve("vae/config.json"))
        .replace("\"AutoencoderKL\"", "\"AutoencoderTiny\""));
    UnsupportedModelException e = assertThrows(UnsupportedModelException.class, () -> Pipelines.load(dir));
    assertTrue(e.getMessage().contains("\"vae\"") && e.getMessage().contains("AutoencoderTiny"), e.getMessage());
  }

  @Test
  void anUnsupportedPipelineClassListsTheSupportedOnes(@TempDir Path tmp) throws IOException {
    Path dir = copy(FLUX, tmp.resolve("flux"));
    Path index = dir.resolve("model_index.json");
    Files.writeString(index, Files.readString(index).replace("\"FluxPipeline\"", "\"FluxKontextPipeline\""));
    UnsupportedModelException e = assertThrows(UnsupportedModelException.class, () -> Pipelines.load(dir));
    assertTrue(e.getMessage().contains("FluxKontextPipeline") && e.getMessage().contains("StableDiffusion3Pipeline"),
        e.getMessage());
  }

  @Test
  void malformedTokenizerFilesAreNamed(@TempDir Path tmp) throws IOException {
    Path dir = copy(FLUX, tmp.resolve("flux"));
    Files.writeString(dir.resolve("tokenizer/tokenizer.json"), "{\"model\": {\"type\": \"BPE\", \"vocab\": [1, 2");
    WeightLoadException e = assertThrows(WeightLoadException.class, () -> Pipelines.load(dir));
    assertTrue(e.getMessage().contains("tokenizer.json"), e.getMessage());
    Path spm = copy(Path.of("src/test/resources/tokenizers/t5-spm"), tmp.resolve("spm"));
    Files.write(spm.resolve("spiece.model"), new byte[] {10, (byte) 0xff, (byte) 0xff, 3});
    WeightLoadException s = assertThrows(WeightLoadException.class, () -> TextTokenizer.load(spm));
    assertTrue(s.getMessage().contains("spiece.model") && s.getMessage().contains("not a SentencePiece model"),
        s.getMessage());
    Path merges = copy(Path.of("src/test/resources/tokenizers/clip"), tmp.resolve("clip"));
    Files.writeString(merges.resolve("merges.txt"), "#version: 0.2\na b c\n");
    WeightLoadException m = assertThrows(WeightLoadException.class, () -> TextTokenizer.load(merges));
    assertTrue(m.getMessage().contains("merges.txt line 2"), m.getMessage());
  }

  @Test
  void overLengthPromptsAreTruncatedAndBadRequestsRefused() {
    try (TextToImagePipeline p = Pipelines.load(FLUX)) {
      String prompt = "a very long prompt about a cat ".repeat(40);
      GeneratedImages img = p.generate(new PromptRequest(prompt, null, 16, 16, 2, 3.5, 1, 1, 0, 24));
      assertEquals(1, img.count());
      assertEquals(16, img.width());
      CacheDitException size = assertThrows(CacheDitException.class,
          () -> p.generate(new PromptRequest("x", null, 18, 16, 2, 3.5, 1, 1, 0, 24)));
      assertTrue(size.getMessage().contains("multiples of 4"), size.getMessage());
      assertThrows(CacheDitException.class, () -> new PromptRequest("x", null, 16, 16, 0, 3.5, 1, 1, 0, null));
      assertThrows(CacheDitException.class, () -> new PromptRequest(null, null, 16, 16, 1, 3.5, 1, 1, 0, null));
    }
  }

  @Test
  void sameSeedSameBitsAndTextEncodersCanBeReleased() {
    PromptRequest r = new PromptRequest("a photo of a cat", null, 16, 16, 2, 3.5, 1, 1, 42, 24);
    float[] kept;
    try (TextToImagePipeline p = Pipelines.load(FLUX)) {
      kept = p.generate(r).pixels();
      assertTrue(java.util.Arrays.equals(kept, p.generate(r).pixels()), "same request, same bits");
      assertTrue(!java.util.Arrays.equals(kept, p.generate(r.withSeed(43)).pixels()), "another seed, another image");
    }
    try (TextToImagePipeline p = Pipelines.load(FLUX, LoadOptions.defaults().withKeepTextEncoders(false))) {
      assertTrue(java.util.Arrays.equals(kept, p.generate(r).pixels()), "released encoders give the same image");
    }
  }

  @Test
  void aReplacementTransformerFileIsUsed(@TempDir Path tmp) throws IOException {
    Path file = tmp.resolve("other.safetensors");
    Files.copy(FLUX.resolve("transformer/diffusion_pytorch_model.safetensors"), file);
    PromptRequest r = new PromptRequest("a cat", null, 16, 16, 2, 3.5, 1, 1, 1, 24);
    try (TextToImagePipeline a = Pipelines.load(FLUX);
         TextToImagePipeline b = Pipelines.load(FLUX, LoadOptions.defaults().withTransformer(file))) {
      assertTrue(java.util.Arrays.equals(a.generate(r).pixels(), b.generate(r).pixels()));
    }
  }
}
