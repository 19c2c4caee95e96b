package io.cachedit.fashion;

import io.cachedit.image.Images;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.jfree.chart.ChartFactory;
import org.jfree.chart.ChartUtils;
import org.jfree.chart.JFreeChart;
import org.jfree.chart.axis.LogAxis;
import org.jfree.chart.plot.PlotOrientation;
import org.jfree.data.xy.XYSeries;
import org.jfree.data.xy.XYSeriesCollection;

/** The model card of a trained bundled model: loss curve PNG, sample grid PNG and README.md. */
public final class TrainingReport {
  private TrainingReport() {}

  /** Samples per class in the card's grid, their seed, steps and guidance. */
  static final int SAMPLES_PER_CLASS = 8;
  static final long SAMPLE_SEED = 0;
  static final int SAMPLE_STEPS = 28;
  static final double SAMPLE_GUIDANCE = 4.0;

  /** Writes the card of a run that completed all of {@code options.steps()}. */
  public static void write(BundledModel model, FlowMatchingTrainer.Options options,
      List<FlowMatchingTrainer.LossPoint> curve, String command, Path dir) {
    write(model, options, curve, options.steps(), command, dir);
  }

  /**
   * Writes the card of the EMA checkpoint saved at {@code checkpointStep}; when that is before
   * {@code options.steps()} (an interrupted run) the card says so, and the curve is cut at the checkpoint.
   */
  public static void write(BundledModel model, FlowMatchingTrainer.Options options,
      List<FlowMatchingTrainer.LossPoint> fullCurve, int checkpointStep, String command, Path dir) {
    List<FlowMatchingTrainer.LossPoint> curve = fullCurve.stream().filter(p -> p.step() <= checkpointStep).toList();
    if (curve.isEmpty() || checkpointStep > options.steps()
        || fullCurve.get(fullCurve.size() - 1).step() < checkpointStep) {
      throw new IllegalArgumentException("checkpoint step " + checkpointStep + " is not covered by the loss curve"
          + " (steps " + (fullCurve.isEmpty() ? "none" : fullCurve.get(0).step() + ".."
          + fullCurve.get(fullCurve.size() - 1).step()) + ", planned " + options.steps() + ")");
    }
    System.setProperty("java.awt.headless", "true");
    lossChart(curve, dir.resolve("loss.png"));
    sampleGrid(model, dir.resolve("samples.png"));
    FlowMatchingTrainer.LossPoint last = curve.get(curve.size() - 1);
    String interrupted = checkpointStep == options.steps() ? "" : String.format(Locale.ROOT,
        "%n%nThese weights are the EMA checkpoint saved at step %,d of a run planned for %,d steps (learning rate"
            + " %.1e there, on its cosine decay); the run was stopped after step %,d, and the checkpoint was kept"
            + " rather than spending another 80 CPU minutes. The table describes the plan; loss and time are at"
            + " the checkpoint.", checkpointStep, options.steps(), last.lr(),
        fullCurve.get(fullCurve.size() - 1).step());
    long params = model.transformer().parameters().values().stream().mapToLong(Tensor::numel).sum();
    String card = """
        # fashion-flux: the bundled model of cachedit

        A class-conditional **FLUX.1-architecture** transformer (`FluxTransformer2DModel`: %d double-stream and
        %d single-stream blocks, hidden %d, %d heads, 3-axis RoPE; %,d parameters) trained from scratch by
        cachedit's own Java training code on **Fashion-MNIST** (Zalando, MIT licence; Debian package
        `dataset-fashion-mnist`, 60,000 training images, 28x28 grayscale). Pixel space: no VAE; each image is
        packed 4x4 into 49 tokens of 16 channels. The prompts are the ten class names
        (%s); each owns %d learned text tokens and a pooled vector (`text_encoder/`), and the empty prompt is
        the null class used for classifier-free guidance.%s

        ## Training

        | | |
        |---|---|
        | objective | rectified flow: x_t = (1-s) x_0 + s e, predict e - x_0, s ~ logit-normal(0, 1) |
        | optimizer | AdamW, lr %.1e peak, %d warm-up steps, cosine decay to 10%%, weight decay %.2f, grad-norm clip 1 |
        | steps x batch | %,d x %d (%.1f epochs) |
        | EMA | decay %.3f (saved weights are the EMA) |
        | label dropout | %.0f%% to the null class |
        | seed | %d |
        | time | %.1f min on a 2-core CPU, last logged loss %.4f |
        | command | `./cachedit %s` |

        ![loss](loss.png)

        ## Samples

        %d per class (rows in label order), seed %d, %d Euler steps, classifier-free guidance %.1f, uncached:

        ![samples](samples.png)

        Generate your own: `./cachedit generate --prompt "sneaker" --compare --cache dbcache --out out.png`.
        """.formatted(model.transformer().config().numLayers(), model.transformer().config().numSingleLayers(),
        model.transformer().config().innerDim(), model.transformer().config().numAttentionHeads(), params,
        String.join(", ", FashionMnist.CLASSES), FlowMatchingTrainer.TEXT_TOKENS, interrupted, options.lr(),
        options.warmupSteps(), options.weightDecay(), options.steps(), options.batch(),
        (double) options.steps() * options.batch() / 60000.0, options.emaDecay(), 100 * options.cfgDropout(),
        options.seed(), last.secondsElapsed() / 60.0, last.loss(), command.replaceFirst("^cachedit ", ""),
        SAMPLES_PER_CLASS, SAMPLE_SEED, SAMPLE_STEPS, SAMPLE_GUIDANCE);
    try {
      Files.writeString(dir.resolve("README.md"), card);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  static void lossChart(List<FlowMatchingTrainer.LossPoint> curve, Path file) {
    XYSeries series = new XYSeries("training loss (mean per logging interval)");
    for (FlowMatchingTrainer.LossPoint p : curve) {
      series.add(p.step(), p.loss());
    }
    JFreeChart chart = ChartFactory.createXYLineChart("Rectified-flow loss", "step", "MSE", new XYSeriesCollection(series),
        PlotOrientation.VERTICAL, true, false, false);
    LogAxis log = new LogAxis("MSE (log)");
    log.setSmallestValue(1e-3);
    // plain decimals instead of 10^0.05 exponents; the tick units follow the data's range
    log.setNumberFormatOverride(new java.text.DecimalFormat("0.00"));
    log.setStandardTickUnits(org.jfree.chart.axis.NumberAxis.createStandardTickUnits());
    chart.getXYPlot().setRangeAxis(log);
    try {
      ChartUtils.saveChartAsPNG(file.toFile(), chart, 800, 450);
    } catch (IOException e) {
      throw new UncheckedIOException("cannot write " + file, e);
    }
  }

  static void sampleGrid(BundledModel model, Path file) {
    List<Images.Image8> tiles = new ArrayList<>();
    try (PointerScope scope = new PointerScope(); NoGradGuard noGrad = new NoGradGuard()) {
      for (String prompt : FashionMnist.CLASSES) {
        Tensor images = model.pipeline().generate(Generation.request(model, prompt, SAMPLES_PER_CLASS, SAMPLE_SEED,
            SAMPLE_STEPS, SAMPLE_GUIDANCE), null);
        for (int i = 0; i < SAMPLES_PER_CLASS; i++) {
          tiles.add(Images.fromTensor(images.select(0, i)));
        }
      }
    }
    Images.writePng(Images.upscale(Images.grid(tiles, SAMPLES_PER_CLASS, 2), 2), file);
  }


  static String format(double v) {
    return String.format(Locale.ROOT, "%.4f", v);
  }
}
