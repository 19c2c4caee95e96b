package io.cachedit.pipeline;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.cachedit.CacheDit;
import io.cachedit.CacheHandle;
import io.cachedit.cache.CacheOptions;
import io.cachedit.cache.CacheStats;
import io.cachedit.cache.DBCacheConfig;
import io.cachedit.models.TinyConfigs;
import io.cachedit.models.flux.FluxTransformer2DModel;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

class FluxPipelineTest {
  private PointerScope scope;

  @BeforeEach
  void open() {
    scope = new PointerScope();
  }

  @AfterEach
  void close() {
    scope.close();
  }

  static FluxPipeline.Request request(long seed, double trueCfg, boolean batched) {
    torch.manual_seed(100);
    Tensor prompt = torch.randn(1, 5, 12);
    Tensor pooled = torch.randn(1, 6);
    Tensor neg = torch.randn(1, 5, 12);
    Tensor negPooled = torch.randn(1, 6);
    return new FluxPipeline.Request(prompt, pooled, trueCfg > 1 ? neg : null, trueCfg > 1 ? negPooled : null, 64, 48,
        6, 3.5, trueCfg, batched, 2, seed);
  }

  @Test
  void scheduler_fluxSigmasFollowTheDynamicShift() {
    FlowMatchEulerScheduler s = FlowMatchEulerScheduler.flux();
    assertEquals(1.15, s.mu(4096), 1e-12);  // 1024x1024
    assertEquals(0.5, s.mu(256), 1e-12);
    double[] sigmas = s.sigmas(4, FlowMatchEulerScheduler.linspaceToOneOver(4), s.mu(4096));
    assertEquals(5, sigmas.length);
    assertEquals(1.0, sigmas[0], 1e-7);
    double e = Math.exp(1.15);
    assertEquals((float) (e / (e + (1 / 0.75 - 1))), sigmas[1], 1e-7);
    assertEquals((float) (e / (e + 3)), sigmas[3], 1e-7);  // base sigma 0.25
    assertEquals(0.0, sigmas[4]);
    double[] sd3 = FlowMatchEulerScheduler.staticShift(3.0).sigmas(2, null, Double.NaN);
    assertEquals(1.0, sd3[0], 1e-7);
    // the reference shifts sigma_min twice when no sigmas are passed
    double once = 3.0 * 0.001 / (1 + 2 * 0.001);
    assertEquals(3.0 * once / (1 + 2 * once), sd3[1], 1e-6);
    assertArrayEquals(new double[] {1000.0}, FlowMatchEulerScheduler.flux().timesteps(new double[] {1.0, 0.0}));
    assertThrows(IllegalArgumentException.class, () -> s.sigmas(3, null, Double.NaN));
  }

  @Test
  void packingRoundTripsAndIdsMatchDiffusers() {
    Tensor x = torch.randn(2, 4, 6, 8);
    Tensor packed = FluxPipeline.pack(x);
    assertArrayEquals(new long[] {2, 12, 16}, packed.sizes().vec().get());
    assertTrue(torch.equal(x, FluxPipeline.unpack(packed, 6, 8)));
    Tensor ids = FluxPipeline.imageIds(3, 4);
    assertArrayEquals(new long[] {12, 3}, ids.sizes().vec().get());
    assertEquals(2.0, ids.select(0, 11).select(0, 1).item_double());  // row of token 11
    assertEquals(3.0, ids.select(0, 11).select(0, 2).item_double());  // column
    // token 5 = row 1, column 1; packed channel 0..3 of that token = the 2x2 patch of channel 0
    assertEquals(x.select(0, 0).select(0, 0).select(0, 3).select(0, 3).item_double(),
        packed.select(0, 0).select(0, 5).select(0, 3).item_double());
  }

  @Test
  void generate_isDeterministicAndSeedDependent() {
    try (FluxTransformer2DModel model = (FluxTransformer2DModel) ModelRegistry.defaults().randomTransformer(TinyConfigs.flux(true), 1,
        ScalarType.Float)) {
      FluxPipeline pipe = new FluxPipeline(model, FlowMatchEulerScheduler.flux());
      Tensor a = pipe.generate(request(7, 1.0, false), null);
      assertArrayEquals(new long[] {2, 2, 8, 6}, a.sizes().vec().get());
      assertTrue(torch.equal(a, pipe.generate(request(7, 1.0, false), null)));
      assertFalse(torch.equal(a, pipe.generate(request(8, 1.0, false), null)));
      // true CFG: separate cond/uncond calls and one batched call agree
      Tensor separate = pipe.generate(request(7, 4.0, false), null);
      Tensor batched = pipe.generate(request(7, 4.0, true), null);
      assertTrue(torch.allclose(separate, batched, 1e-4, 1e-5, false));
      assertFalse(torch.allclose(separate, a, 1e-3, 1e-3, false), "CFG changes the result");
    }
  }

  @Test
  void caching_onePipelineLine_thresholdZeroIsExact() {
    try (FluxTransformer2DModel model = (FluxTransformer2DModel) ModelRegistry.defaults().randomTransformer(TinyConfigs.flux(true), 2,
        ScalarType.Float)) {
      FluxPipeline pipe = new FluxPipeline(model, FlowMatchEulerScheduler.flux());
      Tensor plain = pipe.generate(request(3, 4.0, false), null);
      try (CacheHandle h = CacheDit.enableCache(pipe, CacheOptions.of(DBCacheConfig.builder().fnComputeBlocks(1).residualDiffThreshold(0)
          .build()))) {
        assertTrue(torch.equal(plain, pipe.generate(request(3, 4.0, false), null)));
      }
      try (CacheHandle h = CacheDit.enableCache(pipe, CacheOptions.of(DBCacheConfig.builder().fnComputeBlocks(1)
          .maxWarmupSteps(2).residualDiffThreshold(1.0).build()))) {
        Tensor cached = pipe.generate(request(3, 4.0, false), null);
        CacheStats s = CacheDit.summary(pipe).get(0);
        assertEquals(java.util.List.of(2, 3, 4, 5), s.cachedSteps());
        assertEquals(java.util.List.of(2, 3, 4, 5), s.cfgCachedSteps(), "the uncond call has its own state");
        assertTrue(cached.isfinite().all().item_bool());
        // a second generation starts fresh (pipeline mode)
        pipe.generate(request(3, 4.0, false), null);
        assertEquals(6, CacheDit.summary(pipe).get(0).accumulatedExecutedSteps());
      }
    }
  }
}
