package io.cachedit.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.cachedit.cache.CacheOptions;
import io.cachedit.cache.CachePresets;
import io.cachedit.cache.CacheStats;
import io.cachedit.fashion.BundledModel;
import io.cachedit.fashion.FashionClassifier;
import io.cachedit.fashion.Generation;
import io.cachedit.image.Images;
import io.cachedit.image.Images.Image8;
import io.cachedit.fashion.ClassifierMetrics;
import io.cachedit.metrics.ImageMetrics;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.function.IntConsumer;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code cachedit generate}: images from the bundled model (or another), cached, optionally compared. */
@Command(name = "generate", mixinStandardHelpOptions = true,
    description = {"Generates a grid of images for a prompt with the bundled Fashion-MNIST FLUX model, or any text "
        + "prompt with a diffusers pipeline folder (FluxPipeline, StableDiffusion3Pipeline, ZImagePipeline: "
        + "docs/pipelines.md).",
        "With --compare, also runs uncached with the same seed and reports wall times, speedup, cached steps, and PSNR"
            + " / SSIM of the cached images against the uncached ones."})
final class GenerateCommand implements Callable<Integer> {
  @Option(names = "--prompt", required = true, description = "bundled model: a class name (t-shirt, trouser, pullover,"
      + " dress, coat, sandal, shirt, sneaker, bag, ankle boot); diffusers folders: any text")
  String prompt;

  @Option(names = "--n", description = "images (default 16 for the bundled model, 1 for a diffusers folder)")
  Integer n;

  @Option(names = "--seed", description = "noise seed (default ${DEFAULT-VALUE})")
  long seed = 0;

  @Option(names = "--steps", description = "denoising steps (default ${DEFAULT-VALUE})")
  int steps = 28;

  @Option(names = "--guidance", description = "guidance scale: classifier-free (bundled model, SD3; 1 = off) or "
      + "FLUX's guidance embedding (default 4 for the bundled model, 3.5 FLUX, 7 SD3, 5 Z-Image; Z-Image: > 0 is CFG)")
  Double guidance;

  @Option(names = "--negative-prompt", description = "diffusers folders: the negative prompt (SD3 CFG; FLUX true CFG "
      + "with --true-cfg > 1)")
  String negativePrompt;

  @Option(names = "--true-cfg", description = "FLUX folders: true classifier-free guidance scale with "
      + "--negative-prompt (default ${DEFAULT-VALUE}: off)")
  double trueCfg = 1.0;

  @Option(names = "--height", description = "diffusers folders: image height in pixels (default: the pipeline's, 1024)")
  Integer height;

  @Option(names = "--width", description = "diffusers folders: image width in pixels (default: the pipeline's, 1024)")
  Integer width;

  @Option(names = "--frames", description = "video folders (Wan): frames, 1 + 4k (default 81)")
  Integer frames;

  @Option(names = "--fps", description = "video folders: frames per second of a .gif --out (default ${DEFAULT-VALUE})")
  int fps = 16;

  @Option(names = "--max-sequence-length", description = "diffusers folders: T5 tokens (default FLUX 512, SD3 256)")
  Integer maxSequenceLength;

  @Option(names = "--dtype", defaultValue = "fp32", description = "diffusers folders: weights dtype fp32, bf16 or "
      + "fp16 (default ${DEFAULT-VALUE})")
  String dtype;

  @Option(names = "--transformer", description = "diffusers folders: a replacement transformer (folder or one "
      + ".safetensors file), as diffusers' transformer= argument")
  Path transformer;

  @Option(names = "--vae-tiling", description = "diffusers folders: decode in overlapping tiles (FLUX, SD3, Z-Image "
      + "VAEs), for large images in bounded memory")
  boolean vaeTiling;

  @Option(names = "--release-text-encoders", description = "diffusers folders: load the text encoders for each "
      + "prompt and free them before denoising (less memory, slower)")
  boolean releaseTextEncoders;

  static final class CacheChoice {
    @Option(names = "--cache", completionCandidates = PresetNames.class,
        description = "cache preset: ${COMPLETION-CANDIDATES} (default none)")
    String preset;

    @Option(names = "--cache-config", description = "cache settings file (YAML or JSON, see docs/caching.md)")
    Path file;
  }

  /** The preset names, from {@link CachePresets#NAMES}, for --help and shell completion. */
  static final class PresetNames implements Iterable<String> {
    @Override
    public java.util.Iterator<String> iterator() {
      return CachePresets.NAMES.iterator();
    }
  }

  @ArgGroup(exclusive = true)
  CacheChoice cache;

  @Option(names = "--compare", description = "also run uncached and report speedup and PSNR/SSIM")
  boolean compare;

  @Option(names = "--model", description = "model folder: a diffusers pipeline folder (model_index.json) or the "
      + "bundled layout (default: the bundled models/fashion-flux)")
  Path model;

  @Option(names = "--out", required = true, description = "output PNG (a grid of the images); for a video folder "
      + "a .gif is the animation, a .png the grid of its frames")
  Path out;

  @Option(names = "--save-images", description = "also write every image as <prompt>_<index>.png to this folder")
  Path saveImages;

  @Option(names = "--json", description = "print statistics as one JSON object instead of text")
  boolean json;

  @Option(names = "--compute", paramLabel = "fp32|bf16", description = "arithmetic of the linear layers (bundled "
      + "model, fp32 weights): fp32 (default) or bf16 (inputs and weights rounded to bf16, fp32 sums; AVX-512 BF16 "
      + "where the CPU has it; docs/runtime.md). With --compare the baseline is fp32")
  String compute = "fp32";

  @Option(names = "--threads", description = "compute threads (libtorch's pool, which OpenBLAS and cachedit's kernels "
      + "run in; default: OMP_NUM_THREADS or CACHEDIT_THREADS, else the cores)")
  Integer threads;

  @Option(names = "--parallel", paramLabel = "<modes>", description = "parallelism across the processes of "
      + "cachedit launch (or torchrun's environment): a comma list of ulysses=N, ring=N, tp=N, cfg=2 and the flags "
      + "anything, float8, async, allgather, e.g. ulysses=2,anything,float8 or cfg=2 (docs/parallelism.md). Rank 0 "
      + "writes --out and prints; with --compare the baseline is one process on all cores")
  String parallel;

  @Option(names = "--quantize", paramLabel = "TYPE", description = QuantizeOption.DESCRIPTION + ". With --compare "
      + "the uncached baseline runs the unquantised model, so PSNR measures quantisation and caching together")
  String quantize;

  static Path home() {
    return Path.of(System.getProperty("cachedit.home", "."));
  }

  CacheOptions options() {
    if (cache == null) {
      return null;
    }
    return cache.file != null ? CacheOptions.load(cache.file) : CachePresets.get(cache.preset).orElse(null);
  }

  @Override
  public Integer call() throws Exception {
    boolean diffusers = model != null && io.cachedit.pipeline.PipelineFolder.isPipelineFolder(model)
        && io.cachedit.diffusers.Pipelines.SUPPORTED.contains(io.cachedit.pipeline.PipelineFolder.open(model)
            .pipelineClass());
    if (!diffusers) {
      n = n == null ? 16 : n;
      guidance = guidance == null ? 4.0 : guidance;
      if (negativePrompt != null || height != null || width != null || maxSequenceLength != null || transformer != null
          || releaseTextEncoders || trueCfg != 1.0 || frames != null || vaeTiling) {
        throw io.cachedit.error.ConfigException.forField("--model", "--negative-prompt, --true-cfg, --height, --width, --frames, "
            + "--max-sequence-length, --transformer and --release-text-encoders apply to diffusers pipeline folders "
            + "(" + String.join(", ", io.cachedit.diffusers.Pipelines.SUPPORTED) + "); " + (model == null ? "the bundled model" : model)
            + " is not one");
      }
    }
    if (n != null && (n < 1 || n > 1024)) {
      throw io.cachedit.error.ConfigException.forField("--n", "--n " + n + ": images must be 1..1024");
    }
    if (steps < 1 || steps > 1000) {
      throw io.cachedit.error.ConfigException.forField("--steps", "--steps " + steps + ": steps must be 1..1000");
    }
    if (guidance != null && !(guidance >= 0 && guidance <= 100)) {  // NaN fails too
      throw io.cachedit.error.ConfigException.forField("--guidance", "--guidance " + guidance + ": the guidance scale "
          + "must be a finite number in 0..100 (1 = off)");
    }
    Images.checkWritable(out);  // before any work: a bad --out must not cost a generation
    if (threads != null) {
      if (threads < 1 || threads > 4096) {
        throw io.cachedit.error.ConfigException.forField("--threads", "--threads " + threads + ": must be 1..4096");
      }
      io.cachedit.kernels.NativeRuntime.setThreads(threads);
    }
    if (saveImages != null && Files.exists(saveImages) && !Files.isDirectory(saveImages)) {
      throw io.cachedit.error.ConfigException.forField("--save-images", "--save-images " + saveImages
          + " is a file; give a folder");
    }
    CacheOptions fileOptions = options();
    io.cachedit.parallel.ParallelismConfig parallelism = ParallelRun.config(parallel, fileOptions);
    io.cachedit.quant.QuantizeConfig quantization = QuantizeOption.resolve(quantize, fileOptions);
    CacheOptions options = QuantizeOption.withoutQuantize(ParallelRun.withoutParallelism(fileOptions));
    io.cachedit.quant.LinearCompute linearCompute = io.cachedit.quant.LinearCompute.parse(compute);
    boolean bf16 = linearCompute == io.cachedit.quant.LinearCompute.BF16;
    if (compare && options == null && quantization == null && !bf16) {
      throw new IllegalArgumentException("--compare needs --cache, --cache-config, --quantize or --compute bf16 (there "
          + "is nothing to compare)");
    }
    if (bf16 && quantization != null) {
      throw io.cachedit.error.ConfigException.forField("--compute", "--compute bf16 and --quantize both choose the "
          + "linear layers' arithmetic; use one");
    }
    if (diffusers) {
      if (bf16) {
        throw io.cachedit.error.ConfigException.forField("--compute", "--compute bf16 applies to the bundled model; for "
            + "a diffusers folder use --dtype bf16 (libtorch's bf16)");
      }
      return DiffusersGenerate.run(this, options);
    }
    Path dir = model != null ? model : home().resolve(BundledModel.DEFAULT_DIR);
    PrintStream err = System.err;
    try (PointerScope scope = new PointerScope();
         ParallelRun pr = ParallelRun.join(parallelism, dir.resolve("transformer"));
         BundledModel m = BundledModel.load(dir, pr.weights());
         BundledModel dense = (quantization != null || bf16) && compare ? BundledModel.load(dir, pr.weights()) : null) {
      io.cachedit.quant.QuantizeReport quantized = QuantizeOption.apply(m.transformer(), quantization,
          pr.root() ? err : null);
      if (bf16) {
        io.cachedit.quant.BatchInvariance.apply(m.transformer(), linearCompute);  // fp32 baseline below stays fp32
        if (dense != null && io.cachedit.kernels.NativeRuntime.cachedItLinear()) {
          io.cachedit.quant.BatchInvariance.apply(dense.transformer());
        }
      } else if (io.cachedit.kernels.NativeRuntime.cachedItLinear()
          && m.transformer().dtype() == org.bytedeco.pytorch.global.torch.ScalarType.Float && quantization == null) {
        io.cachedit.quant.BatchInvariance.apply(m.transformer());  // cachedit's fp32 GEMM in the one pool
        if (dense != null) {
          io.cachedit.quant.BatchInvariance.apply(dense.transformer());
        }
      }
      pr.install(m.pipeline());
      if (dense != null) {
        pr.install(dense.pipeline());
      }
      BundledModel baseModel = dense != null ? dense : m;
      m.textEncoder().index(prompt);  // validate before any work
      admit(n, guidance > 1, m, dense != null);
      // warm-up at the real batch shape, uncached and through the cache engine: JIT, allocator and thread pools
      // settle before anything is timed (otherwise the first timed run, the uncached one, pays for them)
      int warmSteps = Math.min(4, steps);
      Generation.run(m, prompt, n, seed, warmSteps, guidance, null, null).close();
      if (options != null) {
        Generation.run(m, prompt, n, seed, warmSteps, guidance, CachePresets.require("dbcache"), null).close();
      }
      Generation.Result base = null;
      Generation.Result singleCached = null;  // under --parallel: the same cached generation on one process
      if (compare) {
        base = pr.singleProcessOnRoot(() -> {
          if (pr.active() || dense != null) {  // one process on all cores, or the dense model: warm it up as well
            Generation.run(baseModel, prompt, n, seed, warmSteps, guidance, null, null).close();
          }
          return Generation.run(baseModel, prompt, n, seed, steps, guidance, null,
              progress(dense != null ? "uncached fp32" : "uncached", steps, err));
        });
        if (pr.active()) {
          singleCached = pr.singleProcessOnRoot(() -> Generation.run(m, prompt, n, seed, steps, guidance, options,
              progress("1 process", steps, err)));
        }
      }
      Generation.Result run = Generation.run(m, prompt, n, seed, steps, guidance, options,
          progress(options == null ? "uncached" : "cached", steps, err));
      if (!pr.root()) {  // rank 0 writes and reports
        run.close();
        return 0;
      }
      List<Image8> images = images(run.images());
      Images.writePng(Images.upscale(Images.grid(images, columns(n), 1), 4), out);
      if (saveImages != null) {
        Files.createDirectories(saveImages);
        String stem = prompt.trim().toLowerCase(Locale.ROOT).replace(' ', '_');
        for (int i = 0; i < images.size(); i++) {
          Images.writePng(images.get(i), saveImages.resolve(String.format(Locale.ROOT, "%s_%03d.png", stem, i)));
        }
      }
      ObjectNode stats = new ObjectMapper().createObjectNode();
      stats.put("prompt", prompt);
      stats.put("n", n);
      stats.put("seed", seed);
      stats.put("steps", steps);
      stats.put("guidance", guidance);
      stats.put("out", out.toString());
      stats.put("seconds", run.seconds());
      stats.put("runtime", io.cachedit.kernels.NativeRuntime.describe());
      stats.put("compute", bf16 ? "bf16 (" + io.cachedit.kernels.Kernels.bf16LinearIsa() + ")" : "fp32");
      stats.put("cached_steps", run.cachedSteps());
      stats.put("ideal_speedup", run.idealSpeedup());
      if (pr.active()) {
        stats.put("parallel", pr.config().strify());
        stats.put("world_size", pr.worldSize());
      }
      if (quantized != null) {
        stats.put("quantize", quantization.quantType().configName());
        stats.put("quantized_layers", quantized.quantized().size());
        stats.put("linear_weight_bytes_before", quantized.bytesBefore());
        stats.put("linear_weight_bytes_after", quantized.bytesAfter());
      }
      if (singleCached != null) {
        boolean sameDecisions = singleCached.stats().stream().map(CacheStats::cachedSteps).toList()
            .equals(run.stats().stream().map(CacheStats::cachedSteps).toList());
        List<Image8> single = images(singleCached.images());
        long differing = 0;
        for (int i = 0; i < single.size(); i++) {
          int[] a = single.get(i).data();
          int[] b = images.get(i).data();
          for (int j = 0; j < a.length; j++) {
            differing += a[j] != b[j] ? 1 : 0;
          }
        }
        stats.put("single_process_cached_seconds", singleCached.seconds());
        stats.put("same_decisions_as_single_process", sameDecisions);
        stats.put("max_abs_diff_vs_single_process", singleCached.images().sub(run.images()).abs().max().item_double());
        stats.put("pixels_differing_vs_single_process", differing);
        singleCached.close();
      }
      Path comparePng = null;
      if (base != null) {
        List<Image8> ref = images(base.images());
        double psnr = 0;
        double ssim = 0;
        int finite = 0;
        for (int i = 0; i < n; i++) {
          double p = ImageMetrics.psnr(ref.get(i), images.get(i));
          if (Double.isFinite(p)) {
            psnr += p;
            finite++;
          }
          ssim += ImageMetrics.ssim(ref.get(i), images.get(i));
        }
        stats.put("uncached_seconds", base.seconds());
        stats.put("speedup", base.seconds() / run.seconds());
        stats.put("psnr", finite == 0 ? Double.POSITIVE_INFINITY : psnr / finite);
        stats.put("ssim", ssim / n);
        comparePng = comparePath(out);
        Images.writePng(Images.upscale(Images.grid(List.of(Images.grid(ref, columns(n), 1),
            Images.grid(images, columns(n), 1)), 2, 4), 4), comparePng);
        stats.put("compare_out", comparePng.toString());
        base.close();
      }
      Path classifierDir = home().resolve(FashionClassifier.DEFAULT_DIR);
      if (model == null && Files.isDirectory(classifierDir)) {
        try (FashionClassifier c = FashionClassifier.load(classifierDir)) {
          Tensor labels = torch.full(new long[] {n}, new Scalar((long) m.textEncoder().index(prompt)));
          stats.put("class_accuracy", ClassifierMetrics.accuracy(c, run.images(), labels));
        }
      }
      ArrayNode summary = stats.putArray("summary");
      for (CacheStats s : run.stats()) {
        ObjectNode o = summary.addObject();
        o.put("name", s.name());
        o.put("cache", s.cacheTag() + "_" + s.calibratorTag());
        o.put("cached_steps", s.totalCachedSteps());
        o.put("blocks_computed", s.blocksComputed());
        o.put("blocks_total", s.blocksTotal());
        o.set("cache_options", new ObjectMapper().valueToTree(s.cacheOptions()));
        o.set("decisions", decisions(s));
      }
      if (json) {
        System.out.println(new ObjectMapper().writeValueAsString(stats));
      } else {
        System.out.printf(Locale.ROOT, "%d x \"%s\", %d steps, seed %d -> %s%n", n, prompt, steps, seed, out);
        if (options != null) {
          System.out.printf(Locale.ROOT, "cache: %s, cached steps %d/%d, blocks run %d/%d (ideal speedup %.2fx)%n",
              summary.isEmpty() ? "?" : summary.get(0).get("cache").asText(), run.cachedSteps(), steps,
              run.stats().stream().mapToLong(CacheStats::blocksComputed).sum(),
              run.stats().stream().mapToLong(CacheStats::blocksTotal).sum(), run.idealSpeedup());
        }
        if (pr.active()) {
          System.out.printf(Locale.ROOT, "parallel: %s on %d processes%n", pr.config().strify(), pr.worldSize());
        }
        if (quantized != null) {
          System.out.printf(Locale.ROOT, "quantised: %s, %d linear layers, linear weights %.1f KiB -> %.1f KiB%n",
              quantization.quantType(), quantized.quantized().size(), quantized.bytesBefore() / 1024.0,
              quantized.bytesAfter() / 1024.0);
        }
        if (stats.has("same_decisions_as_single_process")) {
          System.out.printf(Locale.ROOT, "vs the same cached generation on 1 process (%.2f s): %s decisions, max |diff| "
              + "%.2e, %d of %d 8-bit pixels differ%n", stats.get("single_process_cached_seconds").asDouble(),
              stats.get("same_decisions_as_single_process").asBoolean() ? "same" : "DIFFERENT",
              stats.get("max_abs_diff_vs_single_process").asDouble(),
              stats.get("pixels_differing_vs_single_process").asLong(), (long) n * 28 * 28);
        }
        if (comparePng != null) {
          String baseName = dense != null ? "uncached fp32" : "uncached";
          String runName = (quantized != null ? quantization.quantType() + (options != null ? " cached" : "")
              : "cached");
          System.out.printf(Locale.ROOT, "%s%s %.2f s, %s%s %.2f s: speedup %.2fx%n", baseName,
              pr.active() ? " (1 process)" : "", stats.get("uncached_seconds").asDouble(), runName,
              pr.active() ? " (" + pr.worldSize() + " processes)" : "", run.seconds(), stats.get("speedup").asDouble());
          System.out.printf(Locale.ROOT, "%s vs %s: PSNR %.2f dB, SSIM %.4f (side by side: %s)%n", runName, baseName,
              stats.get("psnr").asDouble(), stats.get("ssim").asDouble(), comparePng);
        } else {
          System.out.printf(Locale.ROOT, "wall time %.2f s%n", run.seconds());
        }
        if (stats.has("class_accuracy")) {
          System.out.printf(Locale.ROOT, "classifier agrees with the prompt on %.0f%% of the images%n",
              100 * stats.get("class_accuracy").asDouble());
        }
      }
      run.close();
    }
    return 0;
  }

  /**
   * Peak native bytes a generation holds per batch row, per token and per hidden channel: about 1.75 KB,
   * measured on the bundled model (peak RSS grows 23 MB per image with true CFG, two rows, of 53 tokens x
   * 128 channels, at --n 16..512).
   */
  static final long PEAK_BYTES_PER_ROW_TOKEN_CHANNEL = 1750;

  /**
   * Refuses, before any work, a --n whose generation would not fit in the memory this process may use,
   * with the estimate, the limit and the largest --n that fits.
   */
  static void admit(int n, boolean cfg, BundledModel m, boolean twoModels) {
    long tokens = (long) Math.pow(io.cachedit.fashion.FashionMnist.SIDE / m.pipeline().pixelsPerToken(), 2)
        + m.textEncoder().promptEmbeds().size(1);
    long perImage = (cfg ? 2 : 1) * tokens * m.transformer().config().innerDim() * PEAK_BYTES_PER_ROW_TOKEN_CHANNEL;
    long need = n * perImage;
    long[] limit = memoryLimit();
    if (need > limit[0]) {
      throw io.cachedit.error.ConfigException.forField("--n", String.format(Locale.ROOT, "--n %d needs about %.1f GB"
          + " at its peak (%.1f MB per image on this model) but %.1f GB are available (%s); use --n %d or fewer",
          n, need / 1e9, perImage / 1e6, limit[0] / 1e9, limit[1] == 0 ? "free memory" : limit[1] == 1
              ? "JavaCPP's maxPhysicalBytes: raise -Xmx in CACHEDIT_JAVA_OPTS" : "-Dcachedit.memoryLimit",
          Math.max(1, limit[0] / perImage)));
    }
  }

  /** {bytes this process may still use, 0 = free memory | 1 = JavaCPP's limit | 2 = the property}. */
  static long[] memoryLimit() {
    String forced = System.getProperty("cachedit.memoryLimit");
    if (forced != null) {
      return new long[] {Long.parseLong(forced), 2};
    }
    long free = Long.MAX_VALUE;
    try {
      for (String line : Files.readAllLines(Path.of("/proc/meminfo"))) {
        if (line.startsWith("MemAvailable:")) {
          free = Long.parseLong(line.replaceAll("\\D+", "")) * 1024;
        }
      }
    } catch (java.io.IOException | RuntimeException e) {
      // not Linux: no free-memory bound, JavaCPP's still applies
    }
    long javacpp = org.bytedeco.javacpp.Pointer.maxPhysicalBytes();
    long javacppLeft = javacpp > 0 ? javacpp - org.bytedeco.javacpp.Pointer.physicalBytes() : Long.MAX_VALUE;
    return javacppLeft < free ? new long[] {javacppLeft, 1} : new long[] {free, 0};
  }

  /** The decision trace as JSON: one object per decision, diff and threshold null where none was used. */
  static ArrayNode decisions(CacheStats s) {
    ObjectMapper mapper = new ObjectMapper();
    ArrayNode a = mapper.createArrayNode();
    for (io.cachedit.cache.CacheDecision d : s.decisions()) {
      a.add(mapper.valueToTree(d.toMap()));
    }
    return a;
  }

  static Path comparePath(Path out) {
    String name = out.getFileName().toString();
    int dot = name.lastIndexOf('.');
    String stem = dot > 0 ? name.substring(0, dot) : name;
    return out.resolveSibling(stem + "-compare.png");
  }

  static int columns(int n) {
    return (int) Math.ceil(Math.sqrt(n));
  }

  static List<Image8> images(Tensor batch) {
    List<Image8> out = new ArrayList<>();
    for (long i = 0; i < batch.size(0); i++) {
      out.add(Images.fromTensor(batch.select(0, i)));
    }
    return out;
  }

  /** A one-line progress bar on the terminal (nothing when stderr is not a terminal). */
  static IntConsumer progress(String label, int total, PrintStream err) {
    if (System.console() == null) {
      return null;
    }
    long start = System.nanoTime();
    return step -> {
      int done = step + 1;
      int width = 30;
      int filled = (int) Math.round((double) width * done / total);
      double s = (System.nanoTime() - start) / 1e9;
      err.printf(Locale.ROOT, "\r%-9s [%s%s] %d/%d  %.1f s", label, "#".repeat(filled), ".".repeat(width - filled), done,
          total, s);
      if (done == total) {
        err.println();
      }
      err.flush();
    };
  }
}
