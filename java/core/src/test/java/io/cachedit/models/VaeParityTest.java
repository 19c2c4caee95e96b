package io.cachedit.models;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.cachedit.io.SafetensorsFile;
import io.cachedit.models.vae.AutoencoderKL;
import io.cachedit.pipeline.ModelRegistry;
import java.nio.file.Path;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;

/**
 * AutoencoderKL against diffusers 0.40.0.dev0: a tiny random VAE it saved, decode and encode with and
 * without tiling (32-pixel tiles over a 48x40 image / 24x20 latents, so tiles overlap and blend), from
 * java/diffusers/src/test/python/make_pipeline_fixtures.py.
 */
class VaeParityTest {
  static final Path DIR = Path.of("src/test/resources/vae/AutoencoderKL");

  @Test
  void decodeAndEncodeEqualDiffusersWithAndWithoutTiles() {
    try (PointerScope scope = new PointerScope(); NoGradGuard g = new NoGradGuard();
         AutoencoderKL vae = (AutoencoderKL) ModelRegistry.defaults().load(DIR, ScalarType.Float);
         SafetensorsFile in = SafetensorsFile.open(DIR.resolve("inputs.safetensors"));
         SafetensorsFile expected = SafetensorsFile.open(DIR.resolve("expected.safetensors"))) {
      assertEquals(2, vae.config().scaleFactor());
      for (boolean tiled : new boolean[] {false, true}) {
        vae.setTiling(tiled);
        String p = tiled ? "tiled_" : "";
        close(expected.tensor(p + "decode.sample"), vae.decode(in.tensor("z")), p + "decode");
        AutoencoderKL.LatentDistribution d = vae.encode(in.tensor("x"));
        close(expected.tensor(p + "encode.mean"), d.mean(), p + "encode.mean");
        close(expected.tensor(p + "encode.logvar"), d.logvar(), p + "encode.logvar");
        close(expected.tensor(p + "encode.std"), d.std(), p + "encode.std");
      }
    }
  }

  static void close(Tensor expected, Tensor actual, String what) {
    assertEquals(java.util.Arrays.toString(expected.sizes().vec().get()), java.util.Arrays.toString(actual.sizes().vec().get()),
        what);
    double diff = actual.sub(expected).abs().max().item_double();
    assertTrue(diff < 2e-5, what + ": max |diff| " + diff);
  }
}
