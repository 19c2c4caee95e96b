package io.cachedit.fashion;

import static org.junit.jupiter.api.Assertions.assertTrue;

import io.cachedit.cache.CachePresets;
import io.cachedit.image.Images;
import io.cachedit.metrics.ImageMetrics;
import java.nio.file.Path;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.Test;

/**
 * The models shipped in {@code models/}: the generator still produces what the classifier recognises,
 * and caching keeps its quality. A regression gate for the committed weights and for the engine.
 */
class BundledModelTest {
  static final Path MODEL = Path.of("../..").resolve(BundledModel.DEFAULT_DIR);
  static final Path CLASSIFIER = Path.of("../..").resolve(FashionClassifier.DEFAULT_DIR);

  @Test
  void generatedSamplesAreRecognisedAndCachingKeepsThem() {
    try (PointerScope scope = new PointerScope(); NoGradGuard g = new NoGradGuard();
         BundledModel model = BundledModel.load(MODEL); FashionClassifier classifier = FashionClassifier.load(CLASSIFIER)) {
      TensorVector all = new TensorVector();
      long[] labels = new long[20];
      for (int c = 0; c < 10; c++) {
        try (Generation.Result r = Generation.run(model, FashionMnist.CLASSES.get(c), 2, 100 + c, 20, 4.0, null, null)) {
          all.push_back(r.images().clone());
          labels[2 * c] = c;
          labels[2 * c + 1] = c;
        }
      }
      double accuracy = ClassifierMetrics.accuracy(classifier, torch.cat(all, 0), torch.tensor(labels));
      assertTrue(accuracy >= 0.8, "class accuracy of bundled samples " + accuracy);

      for (String prompt : new String[] {"sneaker", "dress"}) {
        try (Generation.Result base = Generation.run(model, prompt, 4, 7, 28, 4.0, null, null);
             Generation.Result cached = Generation.run(model, prompt, 4, 7, 28, 4.0, CachePresets.require("dbcache"), null)) {
          double psnr = 0;
          for (int i = 0; i < 4; i++) {
            psnr += ImageMetrics.psnr(Images.fromTensor(base.images().select(0, i)),
                Images.fromTensor(cached.images().select(0, i))) / 4;
          }
          assertTrue(psnr > 30, prompt + ": PSNR cached vs uncached " + psnr);
          assertTrue(cached.idealSpeedup() > 1.3, prompt + ": ideal speedup " + cached.idealSpeedup());
          Tensor diff = base.images().sub(cached.images()).abs().max();
          assertTrue(diff.item_double() > 0 || cached.cachedSteps() == 0);
          assertTrue(base.images().abs().max().le(new Scalar(1.5)).item_bool(), "samples out of range");
        }
      }
    }
  }
}
