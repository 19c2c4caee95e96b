package io.cachedit.models;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.cachedit.io.SafetensorsFile;
import io.cachedit.models.vae.AutoencoderKL;
import io.cachedit.models.vae.AutoencoderKLWan;
import io.cachedit.pipeline.ModelRegistry;
import java.nio.file.Path;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;

/**
 * AutoencoderKLWan against diffusers 0.40.0.dev0: a tiny random Wan 2.1-layout VAE (three down steps,
 * two of them temporal) decoding 3 latent frames to 9 video frames and encoding 9 frames, chunk by
 * chunk through the causal caches (java/diffusers/src/test/python/make_pipeline_fixtures.py).
 */
class WanVaeParityTest {
  static final Path DIR = Path.of("src/test/resources/vae/AutoencoderKLWan");

  @Test
  void decodeAndEncodeEqualDiffusers() {
    try (PointerScope scope = new PointerScope(); NoGradGuard g = new NoGradGuard();
         AutoencoderKLWan vae = (AutoencoderKLWan) ModelRegistry.defaults().load(DIR, ScalarType.Float);
         SafetensorsFile in = SafetensorsFile.open(DIR.resolve("inputs.safetensors"));
         SafetensorsFile expected = SafetensorsFile.open(DIR.resolve("expected.safetensors"))) {
      assertEquals(4, vae.config().zDim());
      VaeParityTest.close(expected.tensor("decode.sample"), vae.decode(in.tensor("z")), "decode");
      AutoencoderKL.LatentDistribution d = vae.encode(in.tensor("x"));
      VaeParityTest.close(expected.tensor("encode.mean"), d.mean(), "encode.mean");
      VaeParityTest.close(expected.tensor("encode.logvar"), d.logvar(), "encode.logvar");
      VaeParityTest.close(expected.tensor("encode.std"), d.std(), "encode.std");
    }
  }
}
