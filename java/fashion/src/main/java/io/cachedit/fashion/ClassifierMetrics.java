package io.cachedit.fashion;

import io.cachedit.image.Images;
import io.cachedit.image.Images.Image8;
import io.cachedit.metrics.FrechetDistance;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * Reference-free metrics through the bundled Fashion-MNIST classifier: class accuracy of generated
 * images and the Frechet distance of its penultimate features (not Inception FID).
 */
public final class ClassifierMetrics {
  private ClassifierMetrics() {}

  private static final List<String> BY_LENGTH = FashionMnist.CLASSES.stream()
      .sorted(Comparator.comparingInt(String::length).reversed()).toList();

  /** [N, 1, 28, 28] in [-1, 1] from 28x28 grayscale images (anything else is rejected). */
  public static Tensor tensor(List<Image8> images) {
    for (Image8 im : images) {
      if (im.width() != FashionMnist.SIDE || im.height() != FashionMnist.SIDE || im.channels() != 1) {
        throw new IllegalArgumentException("the Fashion-MNIST classifier takes 28x28 grayscale images, got "
            + im.width() + "x" + im.height() + "x" + im.channels());
      }
    }
    return Images.toTensor(images);
  }

  /** The class named at the start of the file name or its folder's name (e.g. {@code sneaker_003.png}), or -1. */
  public static int labelOf(Path p) {
    List<String> candidates = new ArrayList<>();
    String name = p.getFileName().toString().toLowerCase(Locale.ROOT);
    candidates.add(name);
    if (p.getParent() != null && p.getParent().getFileName() != null) {
      candidates.add(p.getParent().getFileName().toString().toLowerCase(Locale.ROOT));
    }
    for (String c : candidates) {
      for (String cls : BY_LENGTH) {
        if (c.startsWith(cls) || c.startsWith(cls.replace(' ', '_')) || c.startsWith(cls.replace(' ', '-'))) {
          return FashionMnist.CLASSES.indexOf(cls);
        }
      }
    }
    return -1;
  }

  /** Fraction of {@code images} the classifier assigns to {@code labels} (same order). */
  public static double accuracy(FashionClassifier classifier, Tensor images, Tensor labels) {
    try (PointerScope scope = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
      return classifier.predict(images).eq(labels.to(ScalarType.Long)).to(ScalarType.Double).mean().item_double();
    }
  }

  /** Frechet distance between the classifier features of two image sets. */
  public static double frechet(FashionClassifier classifier, Tensor images1, Tensor images2) {
    try (PointerScope scope = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
      return FrechetDistance.compute(classifier.features(images1), classifier.features(images2));
    }
  }
}
