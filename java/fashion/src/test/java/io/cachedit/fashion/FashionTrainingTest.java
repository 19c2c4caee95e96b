package io.cachedit.fashion;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.cachedit.cache.CacheOptions;
import io.cachedit.cache.DBCacheConfig;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The training code, the classifier and the bundled-model folder, on synthetic data with tiny models. */
class FashionTrainingTest {
  private PointerScope scope;

  @BeforeEach
  void open() {
    scope = new PointerScope();
  }

  @AfterEach
  void close() {
    scope.close();
  }

  static FlowMatchingTrainer.Options tiny(long seed) {
    return new FlowMatchingTrainer.Options(60, 16, 3e-3, 0.0, 5, 0.9, 0.1, seed, 10, 30);
  }

  @Test
  void idxFilesRoundTripAndBrokenFilesAreNamed(@TempDir Path dir) throws Exception {
    FashionMnist data = FashionTestData.bands(30, 1);
    FashionTestData.writeIdx(data, dir, "train");
    FashionMnist read = FashionMnist.load(dir, true);
    assertTrue(torch.equal(data.images(), read.images()));
    assertTrue(torch.equal(data.labels(), read.labels()));
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> FashionMnist.load(dir, false));
    assertTrue(e.getMessage().contains("dataset-fashion-mnist"), e.getMessage());
    Files.write(dir.resolve("t10k-images-idx3-ubyte"), new byte[] {0, 0, 8, 1, 0, 0, 0, 1});
    Files.write(dir.resolve("t10k-labels-idx1-ubyte"), new byte[] {0, 0, 8, 1, 0, 0, 0, 1, 3});
    e = assertThrows(IllegalArgumentException.class, () -> FashionMnist.load(dir, false));
    assertTrue(e.getMessage().contains("t10k-images-idx3-ubyte"), e.getMessage());
  }

  @Test
  void flowMatchingTrainingLearnsAndIsReproducible(@TempDir Path dir) {
    FashionMnist data = FashionTestData.bands(200, 2);
    List<FlowMatchingTrainer.LossPoint> curve = new ArrayList<>();
    List<Integer> checkpoints = new ArrayList<>();
    FlowMatchingTrainer.Result a = new FlowMatchingTrainer(tiny(7), data, FashionTestData.TINY_FLUX)
        .train(r -> checkpoints.add(r.step()), curve::add);
    assertEquals(List.of(30, 60), checkpoints);
    assertEquals(6, curve.size());
    assertTrue(curve.get(5).loss() < 0.8 * curve.get(0).loss(), "loss did not fall: " + curve);
    FlowMatchingTrainer.Result b = new FlowMatchingTrainer(tiny(7), data, FashionTestData.TINY_FLUX)
        .train(r -> { }, p -> { });
    for (Map.Entry<String, Tensor> e : a.transformer().parameters().entrySet()) {
      assertTrue(torch.equal(e.getValue(), b.transformer().parameters().get(e.getKey())), e.getKey());
    }
    assertTrue(torch.equal(a.textEncoder().promptEmbeds(), b.textEncoder().promptEmbeds()));

    BundledModel.save(a.transformer(), a.textEncoder(), dir.resolve("model"));
    try (BundledModel loaded = BundledModel.load(dir.resolve("model"))) {
      try (Generation.Result x = Generation.run(loaded, "sneaker", 3, 5, 6, 4.0, null, null);
           Generation.Result y = Generation.run(loaded, "sneaker", 3, 5, 6, 4.0, null, null);
           Generation.Result cached = Generation.run(loaded, "Sneaker ", 3, 5, 6, 4.0, CacheOptions.of(
               DBCacheConfig.builder().fnComputeBlocks(1).maxWarmupSteps(0).residualDiffThreshold(0.0).build()), null)) {
        assertEquals(List.of(3L, 1L, 28L, 28L), List.of(x.images().size(0), x.images().size(1), x.images().size(2),
            x.images().size(3)));
        assertTrue(torch.equal(x.images(), y.images()), "same seed must give identical images");
        assertTrue(torch.equal(x.images(), cached.images()), "threshold 0 must not change the images");
        assertEquals(1.0, cached.idealSpeedup(), 1e-12);
      }
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
          () -> Generation.run(loaded, "hat", 1, 0, 2, 4.0, null, null));
      assertTrue(e.getMessage().contains("ankle boot"), e.getMessage());
    }
    a.transformer().close();
    b.transformer().close();
  }

  @Test
  void classifierLearnsSeparableClassesAndRoundTrips(@TempDir Path dir) {
    FashionMnist train = FashionTestData.bands(1000, 3);
    FashionMnist test = FashionTestData.bands(200, 4);
    try (FashionClassifier c = ClassifierTrainer.train(train, new ClassifierTrainer.Options(1, 50, 2e-3, 0), e -> { })) {
      double acc = ClassifierTrainer.accuracy(c, test);
      assertTrue(acc > 0.95, "accuracy " + acc);
      c.save(dir, "card");
      try (FashionClassifier loaded = FashionClassifier.load(dir)) {
        assertEquals(acc, ClassifierTrainer.accuracy(loaded, test), 0.0);
      }
    }
  }
}
