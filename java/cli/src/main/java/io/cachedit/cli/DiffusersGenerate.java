package io.cachedit.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.cachedit.CacheDit;
import io.cachedit.CacheHandle;
import io.cachedit.cache.CacheOptions;
import io.cachedit.cache.CacheStats;
import io.cachedit.diffusers.GeneratedImages;
import io.cachedit.diffusers.LoadOptions;
import io.cachedit.diffusers.Pipelines;
import io.cachedit.diffusers.PromptRequest;
import io.cachedit.diffusers.TextToImagePipeline;
import io.cachedit.image.Images;
import io.cachedit.image.Images.Image8;
import io.cachedit.metrics.ImageMetrics;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;

/**
 * {@code cachedit generate --model DIR} for a diffusers pipeline folder (FLUX.1, SD3): prompt in, PNG out,
 * with the same cache, compare and JSON options as for the bundled model.
 */
final class DiffusersGenerate {
  private DiffusersGenerate() {}

  /** Each pipeline's default guidance, as its diffusers pipeline has it. */
  static double defaultGuidance(String pipelineClass) {
    return switch (pipelineClass) {
      case "FluxPipeline" -> 3.5;
      case "ZImagePipeline", "WanPipeline" -> 5.0;
      default -> 7.0;
    };
  }

  static int run(GenerateCommand c, CacheOptions options) throws Exception {
    if (c.parallel != null || c.quantize != null) {
      throw io.cachedit.error.ConfigException.forField(c.parallel != null ? "--parallel" : "--quantize",
          "--parallel and --quantize run on the bundled model and transformer folders; diffusers pipeline folders "
              + "generate on one process, unquantised, for now");
    }
    if (c.fps < 1 || c.fps > 100) {  // before loading and generating
      throw io.cachedit.error.ConfigException.forField("--fps", "--fps " + c.fps + ": must be 1..100");
    }
    LoadOptions load = LoadOptions.defaults().withDtype(Dtypes.parse(c.dtype)).withTransformer(c.transformer)
        .withKeepTextEncoders(!c.releaseTextEncoders).withVaeTiling(c.vaeTiling);
    try (TextToImagePipeline p = Pipelines.load(c.model, load)) {
      int n = c.n != null ? c.n : 1;
      int height = c.height != null ? c.height : p.defaultSize();
      int width = c.width != null ? c.width : p.defaultSize();
      double guidance = c.guidance != null ? c.guidance : defaultGuidance(p.pipelineClass());
      boolean video = p.pipelineClass().equals("WanPipeline");
      if (!video && c.frames != null) {
        throw io.cachedit.error.ConfigException.forField("--frames", "--frames applies to video pipelines (WanPipeline);"
            + " " + c.model + " is a " + p.pipelineClass());
      }
      PromptRequest request = new PromptRequest(c.prompt, c.negativePrompt, height, width, c.steps, guidance,
          c.trueCfg, n, c.seed, c.maxSequenceLength, video ? (c.frames != null ? c.frames : 81) : null);
      GeneratedImages base = null;
      double baseSeconds = 0;
      if (c.compare) {
        long t0 = System.nanoTime();
        base = p.generate(request, GenerateCommand.progress("uncached", c.steps, System.err));
        baseSeconds = (System.nanoTime() - t0) / 1e9;
      }
      GeneratedImages run;
      List<CacheStats> stats = List.of();
      long t0 = System.nanoTime();
      if (options == null) {
        run = p.generate(request, GenerateCommand.progress("uncached", c.steps, System.err));
      } else {
        try (CacheHandle cache = CacheDit.enableCache(p.denoiser(), options)) {
          run = p.generate(request, GenerateCommand.progress("cached", c.steps, System.err));
          stats = cache.stats();
        }
      }
      double seconds = (System.nanoTime() - t0) / 1e9;
      List<Image8> images = run.images();
      int shown = images.size();
      if (video && c.out.getFileName().toString().toLowerCase(Locale.ROOT).endsWith(".gif")) {
        run.writeGif(c.out, c.fps);
      } else {
        Images.writePng(shown == 1 ? images.get(0) : Images.grid(images, GenerateCommand.columns(shown), 1), c.out);
      }
      if (c.saveImages != null) {
        Files.createDirectories(c.saveImages);
        for (int i = 0; i < images.size(); i++) {
          run.writePng(i, c.saveImages.resolve(String.format(Locale.ROOT, "image_%03d.png", i)));
        }
      }
      ObjectMapper json = new ObjectMapper();
      ObjectNode o = json.createObjectNode();
      o.put("model", c.model.toString());
      o.put("pipeline", p.pipelineClass());
      o.put("prompt", c.prompt);
      if (c.negativePrompt != null) {
        o.put("negative_prompt", c.negativePrompt);
      }
      o.put("n", n);
      if (video) {
        o.put("frames", shown);
      }
      o.put("height", height);
      o.put("width", width);
      o.put("seed", c.seed);
      o.put("steps", c.steps);
      o.put("guidance", guidance);
      o.put("out", c.out.toString());
      o.put("seconds", seconds);
      long total = stats.stream().mapToLong(CacheStats::blocksTotal).sum();
      long computed = stats.stream().mapToLong(CacheStats::blocksComputed).sum();
      o.put("cached_steps", stats.stream().mapToLong(CacheStats::totalCachedSteps).max().orElse(0));
      o.put("ideal_speedup", computed == 0 ? 1.0 : (double) total / computed);
      Path comparePng = null;
      if (base != null) {
        double psnr = 0;
        double ssim = 0;
        int finite = 0;
        for (int i = 0; i < shown; i++) {
          double v = ImageMetrics.psnr(base.images().get(i), images.get(i));
          if (Double.isFinite(v)) {
            psnr += v;
            finite++;
          }
          ssim += ImageMetrics.ssim(base.images().get(i), images.get(i));
        }
        o.put("uncached_seconds", baseSeconds);
        o.put("speedup", baseSeconds / seconds);
        o.put("psnr", finite == 0 ? Double.POSITIVE_INFINITY : psnr / finite);
        o.put("ssim", ssim / shown);
        comparePng = GenerateCommand.comparePath(c.out);
        Images.writePng(Images.grid(List.of(Images.grid(base.images(), GenerateCommand.columns(shown), 1),
            Images.grid(images, GenerateCommand.columns(shown), 1)), 2, 4), comparePng);
        o.put("compare_out", comparePng.toString());
      }
      ArrayNode summary = o.putArray("summary");
      for (CacheStats s : stats) {
        ObjectNode e = summary.addObject();
        e.put("name", s.name());
        e.put("cache", s.cacheTag() + "_" + s.calibratorTag());
        e.put("cached_steps", s.totalCachedSteps());
        e.put("blocks_computed", s.blocksComputed());
        e.put("blocks_total", s.blocksTotal());
        e.set("cache_options", json.valueToTree(s.cacheOptions()));
        e.set("decisions", GenerateCommand.decisions(s));
      }
      if (c.json) {
        System.out.println(json.writeValueAsString(o));
      } else {
        System.out.printf(Locale.ROOT, "%s: %d x \"%s\" %dx%d, %d steps, seed %d -> %s (%.2f s)%n", p.pipelineClass(), n,
            c.prompt, width, height, c.steps, c.seed, c.out, seconds);
        if (options != null) {
          System.out.printf(Locale.ROOT, "cache: %s, cached steps %d/%d (ideal speedup %.2fx)%n",
              summary.isEmpty() ? "?" : summary.get(0).get("cache").asText(), o.get("cached_steps").asLong(), c.steps,
              o.get("ideal_speedup").asDouble());
        }
        if (comparePng != null) {
          System.out.printf(Locale.ROOT, "uncached %.2f s, cached %.2f s: speedup %.2fx; PSNR %.2f dB, SSIM %.4f (%s)%n",
              baseSeconds, seconds, o.get("speedup").asDouble(), o.get("psnr").asDouble(), o.get("ssim").asDouble(),
              comparePng);
        }
      }
    }
    return 0;
  }
}
