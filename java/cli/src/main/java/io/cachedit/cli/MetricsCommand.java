package io.cachedit.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.cachedit.image.Images;
import io.cachedit.image.Images.Image8;
import io.cachedit.fashion.ClassifierMetrics;
import io.cachedit.metrics.ImageMetrics;
import io.cachedit.metrics.ImagePairs;
import io.cachedit.fashion.FashionClassifier;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.function.ToDoubleBiFunction;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code cachedit metrics}: image quality of files or directories, scikit-image definitions. */
@Command(name = "metrics", mixinStandardHelpOptions = true,
    description = {"Image metrics between -i1 (reference) and -i2 (test), files or directories.",
        "psnr, ssim, mse: scikit-image's definitions (8-bit, data_range 255, 7x7 window; RGB: channel mean).",
        "Directories: images collected recursively, sorted by the trailing number in the file name, paired by index,"
            + " pairs with identical names kept; PSNR of identical images (infinite) is left out of the mean but counted in n.",
        "fid: Frechet distance of the bundled Fashion-MNIST classifier's features (not Inception FID).",
        "accuracy: fraction of -i2 images the classifier assigns to the class named in their file or folder name"
            + " (e.g. sneaker_003.png); unnamed images are compared with the class predicted for their -i1 pair."})
final class MetricsCommand implements Callable<Integer> {
  static final List<String> METRICS = List.of("psnr", "ssim", "mse", "fid", "accuracy");

  @Parameters(arity = "1..*", description = "psnr, ssim, mse, fid, accuracy or all")
  List<String> metrics;

  @Option(names = {"-i1", "--img-true"}, required = true, description = "reference image or directory")
  Path first;

  @Option(names = {"-i2", "--img-test"}, required = true, description = "test image or directory")
  Path second;

  @Option(names = "--json", description = "print one JSON object: {\"psnr\": value, \"n\": count, ...}")
  boolean json;

  @Option(names = "--classifier", description = "classifier folder for fid/accuracy (default: the bundled "
      + "models/fashion-classifier of the cachedit installation, wherever the command runs)")
  Path classifier;

  @Override
  public Integer call() throws Exception {
    Set<String> wanted = new LinkedHashSet<>();
    for (String m : metrics) {
      String k = m.toLowerCase(Locale.ROOT);
      if (k.equals("all")) {
        wanted.addAll(METRICS);
      } else if (METRICS.contains(k)) {
        wanted.add(k);
      } else {
        throw new IllegalArgumentException("unknown metric \"" + m + "\"; use one of " + METRICS + " or all");
      }
    }
    Path classifierDir = classifier != null ? classifier : GenerateCommand.home().resolve(FashionClassifier.DEFAULT_DIR);
    Map<String, Object> out = compute(wanted, first, second, classifierDir);
    if (json) {
      ObjectMapper mapper = new ObjectMapper();
      ObjectNode node = mapper.createObjectNode();
      out.forEach((k, v) -> {
        if (v instanceof Double d) {
          node.put(k, d);
        } else {
          node.put(k, ((Number) v).longValue());
        }
      });
      System.out.println(mapper.writeValueAsString(node));
    } else {
      out.forEach((k, v) -> System.out.println(k + ": " + (v instanceof Double d ? String.format(Locale.ROOT, "%.6f", d) : v)));
    }
    return 0;
  }

  /** The requested metrics; keys {@code psnr}, {@code ssim}, {@code mse}, {@code n}, {@code fid}, {@code accuracy}, ... */
  static Map<String, Object> compute(Set<String> wanted, Path a, Path b, Path classifierDir) {
    Map<String, Object> out = new LinkedHashMap<>();
    boolean pairwise = wanted.contains("psnr") || wanted.contains("ssim") || wanted.contains("mse")
        || wanted.contains("accuracy");
    List<ImagePairs.Pair> pairs = pairwise ? ImagePairs.pair(a, b) : List.of();
    List<Image8[]> images = new ArrayList<>();
    for (ImagePairs.Pair p : pairs) {
      images.add(new Image8[] {Images.readImage(p.first()), Images.readImage(p.second())});
    }
    putMean(out, "psnr", wanted, images, ImageMetrics::psnr);
    putMean(out, "ssim", wanted, images, ImageMetrics::ssim);
    putMean(out, "mse", wanted, images, ImageMetrics::mse);
    if (pairwise && !(wanted.size() == 1 && wanted.contains("accuracy"))) {
      out.put("n", (long) images.size());
    }
    if (wanted.contains("fid") || wanted.contains("accuracy")) {
      try (PointerScope scope = new PointerScope(); FashionClassifier c = FashionClassifier.load(classifierDir)) {
        if (wanted.contains("accuracy")) {
          List<Image8> tests = new ArrayList<>();
          List<Image8> refs = new ArrayList<>();
          long[] labels = new long[pairs.size()];
          boolean needRef = false;
          for (int i = 0; i < pairs.size(); i++) {
            tests.add(images.get(i)[1]);
            refs.add(images.get(i)[0]);
            labels[i] = ClassifierMetrics.labelOf(pairs.get(i).second());
            needRef |= labels[i] < 0;
          }
          Tensor refPred = needRef ? c.predict(ClassifierMetrics.tensor(refs)) : null;
          for (int i = 0; i < labels.length; i++) {
            if (labels[i] < 0) {
              labels[i] = refPred.get(i).item_long();
            }
          }
          out.put("accuracy", ClassifierMetrics.accuracy(c, ClassifierMetrics.tensor(tests), torch.tensor(labels)));
          out.put("accuracy_n", (long) labels.length);
        }
        if (wanted.contains("fid")) {
          List<Image8> left = new ArrayList<>();
          List<Image8> right = new ArrayList<>();
          ImagePairs.collect(a).forEach(p -> left.add(Images.readImage(p)));
          ImagePairs.collect(b).forEach(p -> right.add(Images.readImage(p)));
          out.put("fid", ClassifierMetrics.frechet(c, ClassifierMetrics.tensor(left), ClassifierMetrics.tensor(right)));
          out.put("fid_n1", (long) left.size());
          out.put("fid_n2", (long) right.size());
        }
      }
    }
    return out;
  }

  private static void putMean(Map<String, Object> out, String name, Set<String> wanted, List<Image8[]> images,
      ToDoubleBiFunction<Image8, Image8> metric) {
    if (!wanted.contains(name)) {
      return;
    }
    double sum = 0;
    int finite = 0;
    for (Image8[] p : images) {
      double v = metric.applyAsDouble(p[0], p[1]);
      if (Double.isFinite(v)) {
        sum += v;
        finite++;
      }
    }
    out.put(name, finite == 0 ? Double.POSITIVE_INFINITY : sum / finite);
  }
}
