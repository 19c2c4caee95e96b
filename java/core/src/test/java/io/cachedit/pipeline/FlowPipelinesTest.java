package io.cachedit.pipeline;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.cachedit.CacheDit;
import io.cachedit.CacheHandle;
import io.cachedit.cache.CacheOptions;
import io.cachedit.cache.DBCacheConfig;
import io.cachedit.models.TinyConfigs;
import io.cachedit.models.sd3.SD3Transformer2DModel;
import io.cachedit.models.zimage.ZImageTransformer2DModel;
import java.util.List;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** SD3 and Z-Image sampling loops on tiny random models: guidance algebra, determinism, one-line caching. */
class FlowPipelinesTest {
  private PointerScope scope;
  private NoGradGuard noGrad;

  @BeforeEach
  void open() {
    scope = new PointerScope();
    noGrad = new NoGradGuard();
  }

  @AfterEach
  void close() {
    noGrad.close();
    scope.close();
  }

  static double maxAbs(Tensor a, Tensor b) {
    return a.sub(b).abs().max().item_double();
  }

  static CacheOptions exact() {
    return CacheOptions.of(DBCacheConfig.builder().fnComputeBlocks(1).maxWarmupSteps(0).residualDiffThreshold(0.0)
        .build());
  }

  @Test
  void sd3GuidanceCachingAndSkipLayers() {
    try (SD3Transformer2DModel m = (SD3Transformer2DModel) ModelRegistry.defaults().randomTransformer(TinyConfigs.sd3(true), 4,
        ScalarType.Float)) {
      SD3Pipeline pipe = new SD3Pipeline(m, FlowMatchEulerScheduler.staticShift(3.0));
      torch.manual_seed(1);
      Tensor prompt = torch.randn(2, 5, 12);
      Tensor pooled = torch.randn(2, 6);
      Tensor negative = torch.randn(2, 5, 12);
      Tensor negPooled = torch.randn(2, 6);
      Tensor plain = pipe.generate(SD3Pipeline.Request.of(prompt, pooled, null, null, 64, 64, 6, 1.0, 3), null);
      assertArrayEquals(new long[] {2, 4, 8, 8}, plain.sizes().vec().get());
      // guidance against the prompt itself changes nothing: uncond + s * (cond - uncond) = cond
      Tensor self = pipe.generate(SD3Pipeline.Request.of(prompt, pooled, prompt, pooled, 64, 64, 6, 7.0, 3), null);
      assertTrue(maxAbs(plain, self) < 1e-4, "CFG with negative = positive moved the latents");
      Tensor guided = pipe.generate(SD3Pipeline.Request.of(prompt, pooled, negative, negPooled, 64, 64, 6, 7.0, 3),
          null);
      assertTrue(maxAbs(plain, guided) > 1e-3);
      assertTrue(torch.equal(guided, pipe.generate(SD3Pipeline.Request.of(prompt, pooled, negative, negPooled, 64, 64,
          6, 7.0, 3), null)), "same seed, same latents");
      // one step by hand, cond and uncond as separate calls: fixes the [negative; positive] order and the algebra
      FlowMatchEulerScheduler sch = FlowMatchEulerScheduler.staticShift(3.0);
      double[] sig = sch.sigmas(1, null, Double.NaN);
      Tensor x0 = torch.randn(new long[] {2, 4, 8, 8}, new org.bytedeco.pytorch.GeneratorOptional(
          torch.createCPUGenerator(3)), new org.bytedeco.pytorch.TensorOptions(ScalarType.Float));
      Tensor t0 = torch.full(new long[] {2}, new org.bytedeco.pytorch.Scalar(sch.timesteps(sig)[0]));
      Tensor c = m.forward(x0, prompt, pooled, t0, java.util.Set.of(), null);
      Tensor u = m.forward(x0, negative, negPooled, t0, java.util.Set.of(), null);
      Tensor byHand = FlowMatchEulerScheduler.step(u.add(c.sub(u).mul(new org.bytedeco.pytorch.Scalar(7.0))), x0,
          sig[0], sig[1]);
      assertTrue(maxAbs(byHand, pipe.generate(SD3Pipeline.Request.of(prompt, pooled, negative, negPooled, 64, 64, 1,
          7.0, 3), null)) < 1e-4);
      try (CacheHandle h = CacheDit.enableCache(pipe, exact())) {
        Tensor cached = pipe.generate(SD3Pipeline.Request.of(prompt, pooled, negative, negPooled, 64, 64, 6, 7.0, 3),
            null);
        assertTrue(torch.equal(guided, cached), "threshold 0 must not change the result");
        // skip-layer guidance runs its extra pass outside the cache and changes the result
        Tensor slg = pipe.generate(new SD3Pipeline.Request(prompt, pooled, negative, negPooled, 64, 64, 6, 7.0,
            java.util.Set.of(1), 2.8, 0.01, 0.9, 3), null);
        assertTrue(maxAbs(slg, guided) > 1e-4);
        assertEquals(1, h.stats().size());
      }
    }
  }

  @Test
  void zImageGuidanceRaggedCaptionsAndCaching() {
    try (ZImageTransformer2DModel m = (ZImageTransformer2DModel) ModelRegistry.defaults().randomTransformer(TinyConfigs.zImage(), 5,
        ScalarType.Float)) {
      ZImagePipeline pipe = new ZImagePipeline(m, FlowMatchEulerScheduler.staticShift(3.0));
      torch.manual_seed(2);
      List<Tensor> prompts = List.of(torch.randn(5, 10), torch.randn(40, 10));
      List<Tensor> negatives = List.of(torch.randn(3, 10), torch.randn(3, 10));
      Tensor plain = pipe.generate(new ZImagePipeline.Request(prompts, null, 64, 48, 5, 0.0, 0.0, 1.0, 9), null);
      assertArrayEquals(new long[] {2, 4, 8, 6}, plain.sizes().vec().get());
      assertEquals(ScalarType.Float, plain.scalar_type().intern());
      Tensor self = pipe.generate(new ZImagePipeline.Request(prompts, prompts, 64, 48, 5, 5.0, 0.0, 1.0, 9), null);
      assertTrue(maxAbs(plain, self) < 1e-4, "CFG with negative = positive moved the latents");
      Tensor guided = pipe.generate(new ZImagePipeline.Request(prompts, negatives, 64, 48, 5, 5.0, 0.0, 1.0, 9), null);
      assertTrue(maxAbs(plain, guided) > 1e-3);
      Tensor capped = pipe.generate(new ZImagePipeline.Request(prompts, negatives, 64, 48, 5, 5.0, 1.0, 1.0, 9), null);
      assertFalse(torch.equal(capped, guided), "renormalisation had no effect");
      // one step by hand: model sees 1 - sigma, prediction pos + s (pos - neg), negated, Euler in fp32
      FlowMatchEulerScheduler sch = FlowMatchEulerScheduler.staticShift(3.0);
      double[] sig = sch.sigmas(1, sch.defaultSigmas(1, 0.0), sch.mu(12));
      Tensor x0 = torch.randn(new long[] {2, 4, 8, 6}, new org.bytedeco.pytorch.GeneratorOptional(
          torch.createCPUGenerator(9)), new org.bytedeco.pytorch.TensorOptions(ScalarType.Float));
      Tensor t0 = torch.full(new long[] {2}, new org.bytedeco.pytorch.Scalar((float) (1 - sig[0])));
      List<Tensor> xs = List.of(x0.select(0, 0).unsqueeze(1), x0.select(0, 1).unsqueeze(1));
      List<Tensor> pos = m.forward(xs, t0, prompts, 2, 1, null);
      List<Tensor> neg = m.forward(xs, t0, negatives, 2, 1, null);
      org.bytedeco.pytorch.TensorVector preds = new org.bytedeco.pytorch.TensorVector();
      for (int k = 0; k < 2; k++) {
        preds.push_back(pos.get(k).add(pos.get(k).sub(neg.get(k)).mul(new org.bytedeco.pytorch.Scalar(5.0))).squeeze(1)
            .neg());
      }
      Tensor byHand = FlowMatchEulerScheduler.step(torch.stack(preds, 0), x0, sig[0], sig[1]);
      assertTrue(maxAbs(byHand, pipe.generate(new ZImagePipeline.Request(prompts, negatives, 64, 48, 1, 5.0, 0.0, 1.0,
          9), null)) < 1e-4);
      try (CacheHandle h = CacheDit.enableCache(pipe, exact())) {
        assertTrue(torch.equal(guided, pipe.generate(new ZImagePipeline.Request(prompts, negatives, 64, 48, 5, 5.0, 0.0,
            1.0, 9), null)), "threshold 0 must not change the result");
      }
    }
  }

  @Test
  void qwenImageTrueCfgWithNormRescaleAndCaching() {
    try (io.cachedit.models.qwenimage.QwenImageTransformer2DModel m =
             (io.cachedit.models.qwenimage.QwenImageTransformer2DModel) ModelRegistry.defaults().randomTransformer(TinyConfigs.qwenImage(), 6,
                 ScalarType.Float)) {
      FlowMatchEulerScheduler sch = new FlowMatchEulerScheduler(1000, 1.0, true, 0.5, 0.9, 256, 8192, 0.02);
      QwenImagePipeline pipe = new QwenImagePipeline(m, sch);
      torch.manual_seed(3);
      Tensor prompt = torch.randn(1, 5, 12);
      Tensor negative = torch.randn(1, 3, 12);
      Tensor plain = pipe.generate(new QwenImagePipeline.Request(prompt, null, null, null, 64, 48, 4, 4.0, 11), null);
      assertArrayEquals(new long[] {1, 12, 16}, plain.sizes().vec().get());
      Tensor self = pipe.generate(new QwenImagePipeline.Request(prompt, null, prompt, null, 64, 48, 4, 4.0, 11), null);
      assertTrue(maxAbs(plain, self) < 1e-4, "CFG with negative = positive moved the latents");
      Tensor guided = pipe.generate(new QwenImagePipeline.Request(prompt, null, negative, null, 64, 48, 4, 4.0, 11),
          null);
      assertTrue(maxAbs(plain, guided) > 1e-3);
      // one step by hand: comb = u + s (c - u), rescaled per token to the norm of c (without the terminal
      // stretch, which is 0/0 for a single step, in diffusers too)
      FlowMatchEulerScheduler one = new FlowMatchEulerScheduler(1000, 1.0, true, 0.5, 0.9, 256, 8192, Double.NaN);
      double[] sig = one.sigmas(1, FlowMatchEulerScheduler.linspaceToOneOver(1), one.mu(12));
      Tensor x0 = FluxPipeline.pack(torch.randn(new long[] {1, 4, 8, 6}, new org.bytedeco.pytorch.GeneratorOptional(
          torch.createCPUGenerator(11)), new org.bytedeco.pytorch.TensorOptions(ScalarType.Float)));
      Tensor t0 = torch.full(new long[] {1}, new org.bytedeco.pytorch.Scalar(one.timesteps(sig)[0] / 1000.0));
      List<long[]> shapes = List.<long[]>of(new long[] {1, 4, 3});
      Tensor c = m.forward(x0, prompt, null, t0, shapes, null);
      Tensor u = m.forward(x0, negative, null, t0, shapes, null);
      Tensor comb = u.add(c.sub(u).mul(new org.bytedeco.pytorch.Scalar(4.0)));
      Tensor v = comb.mul(c.pow(new org.bytedeco.pytorch.Scalar(2)).sum(new long[] {-1}, true,
          new org.bytedeco.pytorch.ScalarTypeOptional()).sqrt().div(comb.pow(new org.bytedeco.pytorch.Scalar(2))
          .sum(new long[] {-1}, true, new org.bytedeco.pytorch.ScalarTypeOptional()).sqrt()));
      Tensor byHand = FlowMatchEulerScheduler.step(v, x0, sig[0], sig[1]);
      assertTrue(maxAbs(byHand, new QwenImagePipeline(m, one).generate(new QwenImagePipeline.Request(prompt, null,
          negative, null, 64, 48, 1, 4.0, 11), null)) < 1e-4);
      try (CacheHandle h = CacheDit.enableCache(pipe, exact())) {
        assertTrue(torch.equal(guided, pipe.generate(new QwenImagePipeline.Request(prompt, null, negative, null, 64, 48,
            4, 4.0, 11), null)), "threshold 0 must not change the result");
        assertTrue(h.stats().get(0).cfgCachedSteps() != null);
      }
    }
  }
}
