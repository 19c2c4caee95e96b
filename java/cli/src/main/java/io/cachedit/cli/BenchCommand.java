package io.cachedit.cli;

import io.cachedit.cache.CacheOptions;
import io.cachedit.cache.CachePresets;
import io.cachedit.cache.DBCacheConfig;
import io.cachedit.cache.DBPruneConfig;
import io.cachedit.cache.TaylorSeerCalibratorConfig;
import io.cachedit.fashion.BundledModel;
import io.cachedit.fashion.FashionClassifier;
import io.cachedit.fashion.FashionMnist;
import io.cachedit.fashion.FlowMatchingTrainer;
import io.cachedit.fashion.Generation;
import io.cachedit.image.Images.Image8;
import io.cachedit.fashion.ClassifierMetrics;
import io.cachedit.metrics.FrechetDistance;
import io.cachedit.metrics.ImageMetrics;
import java.awt.Color;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;
import org.jfree.chart.ChartFactory;
import org.jfree.chart.ChartUtils;
import org.jfree.chart.JFreeChart;
import org.jfree.chart.annotations.XYTextAnnotation;
import org.jfree.chart.plot.PlotOrientation;
import org.jfree.chart.plot.XYPlot;
import org.jfree.chart.renderer.xy.XYLineAndShapeRenderer;
import org.jfree.data.xy.XYSeries;
import org.jfree.data.xy.XYSeriesCollection;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code cachedit bench}: the speed-vs-quality sweep of cache settings on the bundled model. */
@Command(name = "bench", mixinStandardHelpOptions = true,
    description = {"Sweeps cache settings (DBCache F1B0/F4B0/F8B0 x thresholds, continuous-cache limits, TaylorSeer,"
        + " step masks, DBPrune) over prompts and seeds with the bundled model and writes a markdown table and a"
        + " speedup-vs-PSNR plot.",
        "Quality is measured against the uncached images of the same prompt and seed; class accuracy and the"
            + " Frechet distance (to the Fashion-MNIST test set, classifier features) use the bundled classifier."})
final class BenchCommand implements Callable<Integer> {
  @Option(names = "--steps", split = ",", description = "step counts (default ${DEFAULT-VALUE})")
  List<Integer> steps = List.of(28, 50);

  @Option(names = "--prompts", split = ",", description = "prompts (default: all ten classes)")
  List<String> prompts = FashionMnist.CLASSES;

  @Option(names = "--seeds", split = ",", description = "seeds (default ${DEFAULT-VALUE})")
  List<Long> seeds = List.of(0L, 1L);

  @Option(names = "--n", description = "images per prompt and seed (default ${DEFAULT-VALUE})")
  int n = 8;

  @Option(names = "--guidance", description = "classifier-free guidance (default ${DEFAULT-VALUE})")
  double guidance = 4.0;

  @Option(names = "--only", description = "run only configs whose name contains this text")
  String only;

  @Option(names = "--out", description = "output folder for bench.md and speedup-psnr.png (default ${DEFAULT-VALUE})")
  Path out = Path.of("docs", "bench");

  @Option(names = "--model", description = "model folder (default: the bundled models/fashion-flux)")
  Path model;

  @Option(names = "--classifier", description = "classifier folder (default: the bundled models/fashion-classifier)")
  Path classifierDir;

  @Option(names = "--data", description = "Fashion-MNIST folder for the Frechet reference (default ${DEFAULT-VALUE})")
  Path data = FashionMnist.DEFAULT_DIR;

  @Option(names = "--test-images", description = "test images in the Frechet reference (default ${DEFAULT-VALUE})")
  int testImages = 10_000;

  @Option(names = "--parallel", paramLabel = "<modes>", description = "run every generation in parallel across the "
      + "processes of cachedit launch (e.g. ulysses=2, tp=2, cfg=2); rank 0 writes the table and the plot")
  String parallel;

  @Option(names = "--quantize", split = ",", paramLabel = "TYPE", description = "instead of the cache sweep, measure "
      + "quantisation: for each type (a comma list, or 'all'), the quantised model uncached, with dbcache and with "
      + "quadratic-9, each against the fp32 uncached images; writes quantize.md and quantize-speedup-psnr.png")
  List<String> quantize;

  /** A row's model and cache settings (null options: uncached). */
  record Variant(BundledModel model, CacheOptions options) {}

  /** The sweep. */
  static Map<String, CacheOptions> configs() {
    Map<String, CacheOptions> c = new LinkedHashMap<>();
    for (double r : new double[] {0.08, 0.12, 0.16, 0.24}) {
      c.put(String.format(Locale.ROOT, "F1B0 R%.2f MC3", r), CacheOptions.of(db(1, r, 3)));
    }
    for (int mc : new int[] {2, 5, -1}) {
      c.put(String.format(Locale.ROOT, "F1B0 R0.24 MC%s", mc < 0 ? "inf" : mc), CacheOptions.of(db(1, 0.24, mc)));
    }
    for (int fn : new int[] {4, 8}) {
      for (double r : new double[] {0.12, 0.24}) {
        c.put(String.format(Locale.ROOT, "F%dB0 R%.2f MC3", fn, r), CacheOptions.of(db(fn, r, 3)));
      }
    }
    for (double r : new double[] {0.24, 0.32}) {
      c.put(String.format(Locale.ROOT, "F1B0 R%.2f MC5 +TS1", r), CacheOptions.of(db(1, r, 5),
          TaylorSeerCalibratorConfig.ofOrder(1)));
    }
    c.put("F1B0 R0.32 MC5 +TS2", CacheOptions.of(db(1, 0.32, 5), TaylorSeerCalibratorConfig.ofOrder(2)));
    for (String mask : new String[] {"slow", "medium", "fast", "ultra"}) {
      c.put("scm-" + mask + " +TS1", CachePresets.require("scm-" + mask));
    }
    c.put("quadratic:12 +TS2", CachePresets.require("quadratic-12"));
    c.put("quadratic:9 +TS1", CachePresets.require("quadratic-9"));
    c.put("quadratic:7 +TS1", CachePresets.require("quadratic-7"));
    for (double r : new double[] {0.08, 0.16}) {
      c.put(String.format(Locale.ROOT, "DBPrune F1B0 R%.2f", r), CacheOptions.of(DBPruneConfig.builder()
          .fnComputeBlocks(1).bnComputeBlocks(0).maxWarmupSteps(4).residualDiffThreshold(r)
          .maxContinuousCachedSteps(-1).build()));
    }
    return c;
  }

  static DBCacheConfig db(int fn, double threshold, int maxContinuous) {
    return DBCacheConfig.builder().fnComputeBlocks(fn).bnComputeBlocks(0).maxWarmupSteps(4).warmupInterval(1)
        .residualDiffThreshold(threshold).maxContinuousCachedSteps(maxContinuous).build();
  }

  /** One config at one step count, summed over prompts and seeds. */
  record Row(String name, int steps, double seconds, double uncachedSeconds, double idealSpeedup, double psnr,
      double ssim, double mse, double accuracy, double frechet) {
    double speedup() {
      return uncachedSeconds / seconds;
    }
  }

  private boolean root = true;

  @Override
  public Integer call() throws IOException {
    Path dir = model != null ? model : GenerateCommand.home().resolve(BundledModel.DEFAULT_DIR);
    Path classifierPath = classifierDir != null ? classifierDir
        : GenerateCommand.home().resolve(FashionClassifier.DEFAULT_DIR);
    Files.createDirectories(out);
    List<Row> rows = new ArrayList<>();
    List<BundledModel> quantModels = new ArrayList<>();
    try (PointerScope scope = new PointerScope(); NoGradGuard g = new NoGradGuard();
         ParallelRun pr = ParallelRun.join(ParallelRun.config(parallel, null), dir.resolve("transformer"));
         BundledModel m = BundledModel.load(dir, pr.weights());
         FashionClassifier classifier = FashionClassifier.load(classifierPath)) {
      pr.install(m.pipeline());
      Map<String, Variant> sweep = new LinkedHashMap<>();
      if (quantize != null) {
        List<String> types = quantize.size() == 1 && quantize.get(0).equals("all")
            ? java.util.Arrays.stream(io.cachedit.quant.QuantType.values()).map(io.cachedit.quant.QuantType::configName)
                .toList() : quantize;
        sweep.put("fp32 dbcache", new Variant(m, CachePresets.require("dbcache")));
        sweep.put("fp32 quadratic:9 +TS1", new Variant(m, CachePresets.require("quadratic-9")));
        for (String type : types) {
          io.cachedit.quant.QuantizeConfig qc = QuantizeOption.parse(type);
          BundledModel qm = BundledModel.load(dir, pr.weights());
          quantModels.add(qm);
          io.cachedit.quant.QuantizeReport r = QuantizeOption.apply(qm.transformer(), qc, pr.root() ? System.err : null);
          pr.install(qm.pipeline());
          String name = type + String.format(Locale.ROOT, " (%.3fx bytes)", r.quantizedRatio());
          sweep.put(name, new Variant(qm, null));
          sweep.put(type + " dbcache", new Variant(qm, CachePresets.require("dbcache")));
          sweep.put(type + " quadratic:9 +TS1", new Variant(qm, CachePresets.require("quadratic-9")));
        }
      } else {
        configs().forEach((name, options) -> {
          if (only == null || name.contains(only)) {
            sweep.put(name, new Variant(m, options));
          }
        });
      }
      root = pr.root();
      for (String p : prompts) {
        m.textEncoder().index(p);
      }
      Tensor test = FashionMnist.load(data, false).images();
      Tensor testFeatures = classifier.features(FlowMatchingTrainer.normalise(
          test.narrow(0, 0, Math.min(testImages, test.size(0)))));  // lives in this command's scope
      // warm-up at the real batch shape, uncached and cached: allocator and JIT settle before the first timing
      int warmSteps = Math.min(8, steps.stream().mapToInt(Integer::intValue).min().orElse(8));
      for (CacheOptions o : java.util.Arrays.asList(null, CachePresets.require("dbcache"), null)) {
        Generation.run(m, prompts.get(0), n, 0, warmSteps, guidance, o, null).close();
      }
      for (BundledModel qm : quantModels) {
        Generation.run(qm, prompts.get(0), n, 0, warmSteps, guidance, null, null).close();
      }
      System.out.println("| config | steps | wall s | speedup | ideal | measured/ideal | PSNR dB | SSIM | MSE | class acc | FD |");
      System.out.println("|---|---|---|---|---|---|---|---|---|---|---|");
      for (int s : steps) {
        rows.addAll(sweepSteps(m, sweep, s, testFeatures, classifier));
      }
    } finally {
      quantModels.forEach(BundledModel::close);
    }
    if (!root) {
      return 0;
    }
    String stem = quantize != null ? "quantize" : "bench";
    String plotName = quantize != null ? "quantize-speedup-psnr.png" : "speedup-psnr.png";
    writeMarkdown(rows, stem + ".md", plotName);
    plot(rows, out.resolve(plotName));
    System.out.println("wrote " + out.resolve(stem + ".md") + " and " + out.resolve(plotName));
    return 0;
  }

  static void print(Row r) {
    System.out.println(line(r));
  }

  static String line(Row r) {
    boolean base = r.name().equals("uncached");
    return String.format(Locale.ROOT, "| %s | %d | %.2f | %.2fx | %.2fx | %s | %s | %s | %s | %.1f%% | %.2f |", r.name(),
        r.steps(), r.seconds(), r.speedup(), r.idealSpeedup(), base ? "" : String.format(Locale.ROOT, "%.3f",
            r.speedup() / r.idealSpeedup()), base ? "" : String.format(Locale.ROOT, "%.2f", r.psnr()),
        base ? "" : String.format(Locale.ROOT, "%.4f", r.ssim()), base ? "" : String.format(Locale.ROOT, "%.2f", r.mse()),
        100 * r.accuracy(), r.frechet());
  }

  /** All prompts x seeds of one config: its 8-bit images (in prompt, seed, index order) and totals. */
  static final class Sweep {
    final List<Image8> images = new ArrayList<>();
    final List<Long> labels = new ArrayList<>();
    final io.cachedit.kernels.NativeScope owner = io.cachedit.kernels.NativeScope.owner("bench sweep");
    final List<Tensor> batches = new ArrayList<>();
    double seconds;
    long blocksComputed;
    long blocksTotal;

    void close() {
      owner.close();
    }

    /** Adds the images and block counts of one generation of {@code n} images of class {@code label}. */
    void add(Generation.Result r, long label, int n) {
      blocksComputed += r.stats().stream().mapToLong(io.cachedit.cache.CacheStats::blocksComputed).sum();
      blocksTotal += r.stats().stream().mapToLong(io.cachedit.cache.CacheStats::blocksTotal).sum();
      batches.add(owner.keep(r.images().clone()));
      images.addAll(GenerateCommand.images(r.images()));
      for (int i = 0; i < n; i++) {
        labels.add(label);
      }
    }

    Row row(String name, int steps, double uncachedSeconds, Tensor testFeatures, FashionClassifier classifier,
        Sweep reference) {
      double psnr = 0;
      double ssim = 0;
      double mse = 0;
      int finite = 0;
      if (reference != null) {
        for (int i = 0; i < images.size(); i++) {
          double p = ImageMetrics.psnr(reference.images.get(i), images.get(i));
          if (Double.isFinite(p)) {
            psnr += p;
            finite++;
          }
          ssim += ImageMetrics.ssim(reference.images.get(i), images.get(i));
          mse += ImageMetrics.mse(reference.images.get(i), images.get(i));
        }
      }
      int count = Math.max(1, images.size());
      try (PointerScope scope = new PointerScope()) {
        TensorVector v = new TensorVector();
        batches.forEach(v::push_back);
        Tensor all = torch.cat(v, 0);
        long[] ids = labels.stream().mapToLong(Long::longValue).toArray();
        double accuracy = ClassifierMetrics.accuracy(classifier, all, torch.tensor(ids));
        double frechet = FrechetDistance.compute(classifier.features(all), testFeatures);
        return new Row(name, steps, seconds, uncachedSeconds,
            blocksComputed == 0 ? 1.0 : (double) blocksTotal / blocksComputed,
            finite == 0 ? Double.POSITIVE_INFINITY : psnr / finite, ssim / count, mse / count, accuracy, frechet);
      }
    }
  }

  /**
   * All configs at one step count. The machine's speed drifts by several percent over minutes, so
   * timings are interleaved: for each prompt and seed, an uncached run, every config (in an order
   * rotated per group), and an uncached run again; each group's uncached time is the mean of its two.
   */
  List<Row> sweepSteps(BundledModel m, Map<String, Variant> sweep, int steps, Tensor testFeatures,
      FashionClassifier classifier) {
    Sweep base = new Sweep();
    Map<String, Sweep> runs = new LinkedHashMap<>();
    sweep.keySet().forEach(name -> runs.put(name, new Sweep()));
    List<String> names = new ArrayList<>(sweep.keySet());
    double before = 0;
    double after = 0;
    int group = 0;
    try {
      for (String prompt : prompts) {
        long label = m.textEncoder().index(prompt);
        for (long seed : seeds) {
          double first;
          try (Generation.Result r = Generation.run(m, prompt, n, seed, steps, guidance, null, null)) {
            first = r.seconds();
            base.add(r, label, n);
          }
          for (int k = 0; k < names.size(); k++) {
            String name = names.get((k + group) % names.size());
            Variant v = sweep.get(name);
            try (Generation.Result r = Generation.run(v.model(), prompt, n, seed, steps, guidance, v.options(), null)) {
              runs.get(name).add(r, label, n);
              runs.get(name).seconds += r.seconds();
            }
          }
          double second;
          try (Generation.Result r = Generation.run(m, prompt, n, seed, steps, guidance, null, null)) {
            second = r.seconds();
          }
          before += first;
          after += second;
          base.seconds += (first + second) / 2;
          group++;
          System.err.printf(Locale.ROOT, "%d steps: %s seed %d done (uncached %.2f s / %.2f s)%n", steps, prompt,
              seed, first, second);
        }
      }
      List<Row> rows = new ArrayList<>();
      rows.add(base.row("uncached", steps, base.seconds, testFeatures, classifier, null));
      for (Map.Entry<String, Sweep> e : runs.entrySet()) {
        rows.add(e.getValue().row(e.getKey(), steps, base.seconds, testFeatures, classifier, base));
      }
      rows.forEach(BenchCommand::print);
      System.out.printf(Locale.ROOT, "uncached wall time %.2f s (first run of each group), %.2f s (last run)%n",
          before, after);
      return rows;
    } finally {
      base.close();
      runs.values().forEach(Sweep::close);
    }
  }

  void writeMarkdown(List<Row> rows, String file, String plotName) throws IOException {
    StringBuilder md = new StringBuilder();
    md.append(quantize != null ? "# Quantisation on the bundled model\n\n" : "# Speed vs quality on the bundled model\n\n");
    md.append(String.format(Locale.ROOT, "Command: `./cachedit bench --steps %s --seeds %s --n %d%s%s%s%s`. Machine: %s, %d"
            + " cores, %s %s, %s. Prompts: %s; %d images per prompt and seed (%d per row), guidance %.1f.%n%n",
        join(steps), join(seeds), n, prompts.equals(FashionMnist.CLASSES) ? "" : " --prompts \"" + String.join(",",
            prompts) + "\"", only == null ? "" : " --only \"" + only + "\"",
        quantize == null ? "" : " --quantize " + String.join(",", quantize), parallel == null ? ""
            : " --parallel " + parallel + " (under cachedit launch)", System.getProperty("os.arch"),
        Runtime.getRuntime().availableProcessors(), System.getProperty("java.vm.name"),
        System.getProperty("java.version"), System.getProperty("os.name"), String.join(", ", prompts), n,
        n * prompts.size() * seeds.size(), guidance));
    md.append("""
        Wall time is the sum over all generations of a row; speedup = uncached wall time / cached wall time;
        ideal = blocks an uncached run executes / blocks executed. Runs are interleaved against the machine's drift:
        for each prompt and seed, an uncached run, every config (order rotated per prompt and seed), and an uncached
        run again; the uncached time of that prompt and seed is the mean of its two runs. PSNR, SSIM (scikit-image definitions, 8-bit) and MSE compare each image with the uncached image of
        the same prompt, seed and index. Class accuracy: the bundled classifier's agreement with the prompt. FD:
        Frechet distance of the classifier's 256-d features to the Fashion-MNIST test images (not Inception FID;
        lower is better).

        Config names: `FnBm` = Fn front blocks always computed (the probe), Bm back blocks; `Rx` = residual-diff
        threshold; `MCk` = at most k cached steps in a row (inf: no limit); all DBCache rows have 4 warm-up steps.
        `+TSk` = TaylorSeer calibrator of order k. With `--quantize`, a type's rows run the model quantised with it
        (its bytes: quantised linear weights over fp32); PSNR, SSIM and MSE still compare with the fp32 uncached images,
        so they measure quantisation and caching together, and the speedup is against the fp32 uncached time. `scm-*` = cache-dit's steps computation masks (dynamic policy,
        threshold 0.3). `quadratic:N` = our mask that computes exactly N steps at round(T (k/N)^2) and caches the
        rest unconditionally (docs/caching.md). `DBPrune` prunes single blocks instead of whole steps.

        | config | steps | wall s | speedup | ideal | measured/ideal | PSNR dB | SSIM | MSE | class acc | FD |
        |---|---|---|---|---|---|---|---|---|---|---|
        """);
    for (Row r : rows) {
      md.append(line(r)).append('\n');
    }
    md.append("\n![speedup vs PSNR](" + plotName + ")\n");
    Files.writeString(out.resolve(file), md.toString());
  }

  static String join(List<?> values) {
    return String.join(",", values.stream().map(String::valueOf).toList());
  }

  static void plot(List<Row> rows, Path file) throws IOException {
    System.setProperty("java.awt.headless", "true");
    XYSeriesCollection data = new XYSeriesCollection();
    Map<Integer, XYSeries> bySteps = new LinkedHashMap<>();
    for (Row r : rows) {
      if (r.name().equals("uncached") || !Double.isFinite(r.psnr())) {
        continue;
      }
      bySteps.computeIfAbsent(r.steps(), k -> {
        XYSeries series = new XYSeries(k + " steps", false, true);
        data.addSeries(series);
        return series;
      }).add(r.speedup(), r.psnr());
    }
    JFreeChart chart = ChartFactory.createScatterPlot("Cache settings on the bundled model: speedup vs PSNR",
        "measured speedup (x)", "PSNR vs uncached (dB)", data, PlotOrientation.VERTICAL, true, false, false);
    XYPlot plot = chart.getXYPlot();
    plot.setBackgroundPaint(Color.WHITE);
    plot.setDomainGridlinePaint(Color.LIGHT_GRAY);
    plot.setRangeGridlinePaint(Color.LIGHT_GRAY);
    XYLineAndShapeRenderer renderer = new XYLineAndShapeRenderer(false, true);
    plot.setRenderer(renderer);
    for (Row r : rows) {
      if (!r.name().equals("uncached") && Double.isFinite(r.psnr()) && r.steps() == rows.get(rows.size() - 1).steps()) {
        XYTextAnnotation a = new XYTextAnnotation(r.name(), r.speedup(), r.psnr() + 0.35);
        a.setFont(new java.awt.Font("SansSerif", java.awt.Font.PLAIN, 9));
        plot.addAnnotation(a);
      }
    }
    ChartUtils.saveChartAsPNG(file.toFile(), chart, 1100, 700);
  }
}
