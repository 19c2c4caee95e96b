package io.cachedit.cli;

import io.cachedit.fashion.BundledModel;
import io.cachedit.fashion.FashionMnist;
import io.cachedit.fashion.FlowMatchingTrainer;
import io.cachedit.fashion.TrainingReport;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code cachedit train}: trains the bundled Fashion-MNIST FLUX model from scratch. */
@Command(name = "train", mixinStandardHelpOptions = true,
    description = "Trains the bundled class-conditional FLUX.1-architecture model on Fashion-MNIST (rectified flow,"
        + " AdamW, EMA) and writes it as a diffusers-style folder with a model card.")
final class TrainCommand implements Callable<Integer> {
  /** Header of the training log {@code loss.csv}, written by a run and read back by {@code --report-only}. */
  static final String LOSS_CSV_HEADER = "step,loss,lr,seconds";

  @Option(names = "--out", defaultValue = "models/fashion-flux", description = "output folder (default ${DEFAULT-VALUE})")
  Path out;

  @Option(names = "--data", description = "folder with the Fashion-MNIST IDX files (default /usr/share/datasets/fashion-mnist)")
  Path data = FashionMnist.DEFAULT_DIR;

  @Option(names = "--steps", description = "optimizer steps (default ${DEFAULT-VALUE})")
  int steps = FlowMatchingTrainer.Options.defaults().steps();

  @Option(names = "--batch", description = "batch size (default ${DEFAULT-VALUE})")
  int batch = FlowMatchingTrainer.Options.defaults().batch();

  @Option(names = "--lr", description = "peak learning rate (default ${DEFAULT-VALUE})")
  double lr = FlowMatchingTrainer.Options.defaults().lr();

  @Option(names = "--seed", description = "seed of initialisation, batches and noise (default ${DEFAULT-VALUE})")
  long seed = FlowMatchingTrainer.Options.defaults().seed();

  @Option(names = "--checkpoint-every", description = "save the EMA model every N steps (default ${DEFAULT-VALUE})")
  int checkpointEvery = FlowMatchingTrainer.Options.defaults().checkpointEvery();

  @Option(names = "--log-every", description = "log the mean loss every N steps (default ${DEFAULT-VALUE})")
  int logEvery = FlowMatchingTrainer.Options.defaults().logEvery();

  @Option(names = "--report-only", paramLabel = "STEP",
      description = "train nothing: write the model card (README.md, loss.png, samples.png) for the EMA checkpoint"
          + " already in --out, saved at step STEP of a run with these options that was stopped early; reads"
          + " --out/loss.csv")
  Integer reportOnlyStep;

  @Override
  public Integer call() throws IOException {
    positive("--steps", steps);
    positive("--batch", batch);
    positive("--log-every", logEvery);
    positive("--checkpoint-every", checkpointEvery);
    if (!(lr > 0 && lr < 1)) {
      throw io.cachedit.error.ConfigException.forField("--lr", "--lr " + lr + ": the learning rate must be in (0, 1)");
    }
    FlowMatchingTrainer.Options d = FlowMatchingTrainer.Options.defaults();
    FlowMatchingTrainer.Options options = new FlowMatchingTrainer.Options(steps, batch, lr, d.weightDecay(),
        Math.min(d.warmupSteps(), Math.max(1, steps / 10)), d.emaDecay(), d.cfgDropout(), seed, logEvery,
        checkpointEvery);
    Path csv = out.resolve("loss.csv");
    String command = "cachedit train --out " + out + " --steps " + steps + " --batch " + batch + " --lr " + lr
        + " --seed " + seed;
    if (reportOnlyStep != null) {
      if (reportOnlyStep % checkpointEvery != 0) {
        throw new IllegalArgumentException("--report-only " + reportOnlyStep + " is not a checkpoint step (checkpoints"
            + " are saved every --checkpoint-every " + checkpointEvery + " steps)");
      }
      List<FlowMatchingTrainer.LossPoint> curve = readCurve(csv);
      try (BundledModel model = BundledModel.load(out)) {
        TrainingReport.write(model, options, curve, reportOnlyStep, command, out);
      }
      System.out.printf(Locale.ROOT, "wrote the card of the step-%d checkpoint to %s%n", reportOnlyStep,
          out.resolve("README.md"));
      return 0;
    }
    FashionMnist train = FashionMnist.load(data, true);
    Files.createDirectories(out);
    List<FlowMatchingTrainer.LossPoint> curve = new ArrayList<>();
    System.out.printf(Locale.ROOT, "training %s on %d images: %d steps x batch %d%n", "FluxTransformer2DModel",
        train.size(), steps, batch);
    try (PrintWriter log = new PrintWriter(Files.newBufferedWriter(csv))) {
      log.println(LOSS_CSV_HEADER);
      FlowMatchingTrainer.Result result = new FlowMatchingTrainer(options, train).train(
          checkpoint -> {
            BundledModel.save(checkpoint.transformer(), checkpoint.textEncoder(), out);
            System.out.printf(Locale.ROOT, "checkpoint at step %d -> %s%n", checkpoint.step(), out);
          },
          p -> {
            curve.add(p);
            log.printf(Locale.ROOT, "%d,%.6f,%.3e,%.1f%n", p.step(), p.loss(), p.lr(), p.secondsElapsed());
            log.flush();
            System.out.printf(Locale.ROOT, "step %6d  loss %.4f  lr %.2e  %.0f s%n", p.step(), p.loss(), p.lr(),
                p.secondsElapsed());
          });
      try (BundledModel model = new BundledModel(result.transformer(), result.textEncoder())) {
        TrainingReport.write(model, options, curve, command, out);
      }
    }
    return 0;
  }

  private static void positive(String option, int value) {
    if (value < 1) {
      throw io.cachedit.error.ConfigException.forField(option, option + " " + value + " must be >= 1");
    }
  }

  /** Reads the {@code step,loss,lr,seconds} log that a training run writes. */
  static List<FlowMatchingTrainer.LossPoint> readCurve(Path csv) throws IOException {
    if (!Files.isRegularFile(csv)) {
      throw new IllegalArgumentException("no training log " + csv + " (written by cachedit train next to the model)");
    }
    List<String> lines = Files.readAllLines(csv);
    if (lines.isEmpty() || !lines.get(0).equals(LOSS_CSV_HEADER)) {
      throw new IllegalArgumentException(csv + ": expected the header " + LOSS_CSV_HEADER);
    }
    List<FlowMatchingTrainer.LossPoint> curve = new ArrayList<>();
    for (int i = 1; i < lines.size(); i++) {
      String[] f = lines.get(i).split(",");
      try {
        if (f.length != 4) {
          throw new NumberFormatException("expected 4 fields");
        }
        curve.add(new FlowMatchingTrainer.LossPoint(Integer.parseInt(f[0]), Double.parseDouble(f[1]),
            Double.parseDouble(f[2]), Double.parseDouble(f[3])));
      } catch (NumberFormatException e) {
        throw new IllegalArgumentException(csv + " line " + (i + 1) + ": " + e.getMessage() + ": " + lines.get(i));
      }
    }
    return curve;
  }
}
