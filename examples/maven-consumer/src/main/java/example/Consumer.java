package example;

import io.cachedit.CacheDit;
import io.cachedit.CacheHandle;
import io.cachedit.cache.CacheStats;
import io.cachedit.fashion.BundledModel;
import io.cachedit.fashion.Generation;
import io.cachedit.image.Images;
import io.cachedit.kernels.NativeRuntime;
import io.cachedit.metrics.ImageMetrics;
import io.cachedit.pipeline.FluxPipeline;
import java.nio.file.Path;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;

/**
 * What a user's program does with cachedit as a dependency: load a model, cache it with the one-line
 * default, generate, and compare with the uncached images. Exits non-zero when something is off.
 */
public final class Consumer {
  public static void main(String[] args) {
    Path dir = Path.of(args.length > 0 ? args[0] : "models/fashion-flux");
    NativeRuntime.initialize();
    System.out.println("runtime: " + NativeRuntime.describe());
    try (BundledModel model = BundledModel.load(dir);
         PointerScope scope = new PointerScope();
         NoGradGuard noGrad = new NoGradGuard()) {
      FluxPipeline.Request request = Generation.request(model, "sneaker", 4, 0, 28, 4.0);
      Tensor plain = model.pipeline().generate(request, null);
      Tensor cached;
      int cachedSteps = 0;
      try (CacheHandle cache = CacheDit.enableCache(model.pipeline())) {  // the one-line default
        cached = model.pipeline().generate(request, null);
        for (CacheStats s : cache.stats()) {
          cachedSteps += s.cachedSteps().size();
          System.out.println(s.name() + " (" + s.cacheTag() + "): " + s.cachedSteps().size() + " cached steps "
              + s.cachedSteps() + ", ideal speedup " + String.format("%.2fx", s.idealSpeedup()));
        }
      }
      double psnr = 0;
      for (int i = 0; i < 4; i++) {
        psnr += ImageMetrics.psnr(Images.fromTensor(plain.select(0, i)), Images.fromTensor(cached.select(0, i))) / 4;
      }
      System.out.printf("one-line default cache: %d cached list-steps, PSNR vs uncached %.1f dB%n", cachedSteps, psnr);
      if (cachedSteps == 0 || psnr < 20) {
        System.err.println("consumer: the default cache did not cache, or changed the images too much");
        System.exit(1);
      }
    }
  }
}
