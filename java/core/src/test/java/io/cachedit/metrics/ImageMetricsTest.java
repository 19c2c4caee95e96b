package io.cachedit.metrics;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.cachedit.image.Images;
import io.cachedit.image.Images.Image8;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Our PSNR / SSIM / MSE against scikit-image 0.26's outputs on 43 PNG pairs (gray and RGB, 7x7 to
 * 128x128, noise, smooth, identical, constant, extremes), written by {@code tools/skimage_fixture.py}.
 */
class ImageMetricsTest {
  static final Path FIXTURE = Path.of("src/test/resources/skimage");

  @Test
  void matchesScikitImage() throws Exception {
    JsonNode expected = new ObjectMapper().readTree(Files.readString(FIXTURE.resolve("expected.json")));
    int checked = 0;
    for (JsonNode p : expected.get("pairs")) {
      Image8 a = Images.readImage(FIXTURE.resolve(p.get("a").asText()));
      Image8 b = Images.readImage(FIXTURE.resolve(p.get("b").asText()));
      String what = p.get("a").asText() + " (" + p.get("kind").asText() + ")";
      double psnr = ImageMetrics.psnr(a, b);
      if (p.get("psnr").isNull()) {
        assertEquals(Double.POSITIVE_INFINITY, psnr, what);
      } else {
        assertEquals(p.get("psnr").asDouble(), psnr, 1e-9, what);
      }
      assertEquals(p.get("ssim").asDouble(), ImageMetrics.ssim(a, b), 1e-9, what);
      assertEquals(p.get("mse").asDouble(), ImageMetrics.mse(a, b), 1e-9 * Math.max(1, p.get("mse").asDouble()), what);
      checked++;
    }
    assertEquals(43, checked);
  }

  @Test
  void rejectsWhatScikitImageRejects() {
    Image8 small = new Image8(6, 6, 1, new int[36]);
    assertThrows(IllegalArgumentException.class, () -> ImageMetrics.ssim(small, small));
    Image8 other = new Image8(7, 6, 1, new int[42]);
    assertThrows(IllegalArgumentException.class, () -> ImageMetrics.psnr(small, other));
  }

  @Test
  void directoriesPairByTrailingNumberAndName(@TempDir Path dir) throws Exception {
    Path a = dir.resolve("a");
    Path b = dir.resolve("b");
    Files.createDirectories(a.resolve("sub"));
    Files.createDirectories(b);
    List<Image8> refs = new ArrayList<>();
    for (int i = 0; i < 3; i++) {
      Image8 im = Images.readImage(FIXTURE.resolve("pair0" + (i + 1) + "_a.png"));
      refs.add(im);
      Images.writePng(im, (i == 2 ? a.resolve("sub") : a).resolve("img_" + (i + 1) * 10 + ".png"));
      Images.writePng(Images.readImage(FIXTURE.resolve("pair0" + (i + 1) + "_b.png")), b.resolve("img_" + (i + 1) * 10
          + ".png"));
    }
    Images.writePng(refs.get(0), b.resolve("zz_99.png"));  // no partner: ignored
    List<ImagePairs.Pair> pairs = ImagePairs.pair(a, b);
    assertEquals(3, pairs.size());
    assertEquals("img_10.png", pairs.get(0).first().getFileName().toString());
    assertEquals("img_30.png", pairs.get(2).second().getFileName().toString());
    assertThrows(IllegalArgumentException.class, () -> ImagePairs.pair(a, b.resolve("img_10.png")));
  }

  @Test
  void frechetDistanceOfGaussians() {
    try (PointerScope scope = new PointerScope()) {
      torch.manual_seed(3);
      var x = torch.randn(4000, 3);
      var y = torch.randn(4000, 3).mul(new org.bytedeco.pytorch.Scalar(2.0)).add(new org.bytedeco.pytorch.Scalar(1.0));
      // N(0, I) vs N(1, 4I) in 3-d: |mu|^2 = 3, tr = 3 + 12 - 2 * 3 * 2 = 3: FD = 6.
      double fd = FrechetDistance.compute(x, y);
      assertTrue(Math.abs(fd - 6.0) < 0.4, "FD " + fd);
      assertTrue(Math.abs(FrechetDistance.compute(x, x)) < 1e-6);
    }
  }
}
