package io.cachedit.cli;

import io.cachedit.fashion.ClassifierTrainer;
import io.cachedit.fashion.FashionClassifier;
import io.cachedit.fashion.FashionMnist;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code cachedit train-classifier}: the Fashion-MNIST CNN behind accuracy and the Frechet distance. */
@Command(name = "train-classifier", mixinStandardHelpOptions = true,
    description = "Trains the Fashion-MNIST CNN used for generated-sample accuracy and the Frechet distance.")
final class TrainClassifierCommand implements Callable<Integer> {
  @Option(names = "--out", defaultValue = "models/fashion-classifier", description = "output folder (default ${DEFAULT-VALUE})")
  Path out;

  @Option(names = "--data", description = "folder with the Fashion-MNIST IDX files (default /usr/share/datasets/fashion-mnist)")
  Path data = FashionMnist.DEFAULT_DIR;

  @Option(names = "--epochs", description = "epochs (default ${DEFAULT-VALUE})")
  int epochs = ClassifierTrainer.Options.defaults().epochs();

  @Option(names = "--seed", description = "seed (default ${DEFAULT-VALUE})")
  long seed = ClassifierTrainer.Options.defaults().seed();

  @Override
  public Integer call() {
    ClassifierTrainer.Options d = ClassifierTrainer.Options.defaults();
    ClassifierTrainer.Options o = new ClassifierTrainer.Options(epochs, d.batch(), d.lr(), seed);
    FashionMnist train = FashionMnist.load(data, true);
    FashionMnist test = FashionMnist.load(data, false);
    long start = System.nanoTime();
    StringBuilder losses = new StringBuilder();
    try (FashionClassifier model = ClassifierTrainer.train(train, o, e -> {
      String line = String.format(Locale.ROOT, "| %d | %.4f |%n", (int) e[0], e[1]);
      losses.append(line);
      System.out.printf(Locale.ROOT, "epoch %d  loss %.4f  %.0f s%n", (int) e[0], e[1], (System.nanoTime() - start) / 1e9);
    })) {
      double acc = ClassifierTrainer.accuracy(model, test);
      double minutes = (System.nanoTime() - start) / 6e10;
      System.out.printf(Locale.ROOT, "test accuracy %.2f%% (%d images), %.1f min%n", 100 * acc, test.size(), minutes);
      String readme = """
          # fashion-classifier

          The judge of cachedit's generated samples, in the role CLIP score plays for text-to-image: a plain CNN
          (conv 3x3 32-32, max-pool, conv 3x3 64-64, max-pool, 256-wide hidden layer, 10 logits; ReLU) trained on
          the 60,000 Fashion-MNIST training images (Debian `dataset-fashion-mnist`).

          - **test accuracy: %.2f%%** on the 10,000 test images
          - %d epochs x batch %d, AdamW lr %.0e with cosine decay, weight decay 1e-4, seed %d, %.1f min on a 2-core CPU
          - command: `./cachedit train-classifier --epochs %d --seed %d`

          | epoch | mean training loss |
          |---|---|
          %s

          `cachedit metrics accuracy` reports the fraction of generated images it assigns to their prompt's class;
          `cachedit metrics fid` is the Frechet distance between Gaussian fits of its 256-d penultimate features.
          This is **not** Inception FID: numbers are comparable only with each other.
          """.formatted(100 * acc, epochs, o.batch(), o.lr(), seed, minutes, epochs, seed, losses.toString().strip());
      model.save(out, readme);
      System.out.println("saved to " + out);
    }
    return 0;
  }
}
