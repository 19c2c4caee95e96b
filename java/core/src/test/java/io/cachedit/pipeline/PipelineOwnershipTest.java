package io.cachedit.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.cachedit.CacheDit;
import io.cachedit.CacheHandle;
import io.cachedit.cache.CacheOptions;
import io.cachedit.cache.CacheStats;
import io.cachedit.cache.DBCacheConfig;
import io.cachedit.kernels.NativeScope;
import io.cachedit.models.TinyConfigs;
import io.cachedit.models.common.DiffusersTransformer;
import io.cachedit.models.common.DiffusionPipeline;
import io.cachedit.models.flux.FluxTransformer2DModel;
import io.cachedit.models.qwenimage.QwenImageTransformer2DModel;
import io.cachedit.models.sd3.SD3Transformer2DModel;
import io.cachedit.models.wan.WanTransformer3DModel;
import io.cachedit.models.zimage.ZImageTransformer2DModel;
import java.util.List;
import java.util.function.Function;
import java.util.function.IntConsumer;
import java.util.stream.Stream;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Every pipeline runs on the one {@link DenoisingLoop}: whatever a generation keeps (latents, text
 * conditioning, RoPE tables) belongs to the generation and is gone after it, whether it ends, fails
 * while preparing, fails inside the model, or is stopped by its step callback. And every registered
 * pipeline refuses a second {@code enableCache} without disturbing the first.
 */
class PipelineOwnershipTest {
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

  /**
   * One pipeline under test.
   *
   * @param run a generation of 4 steps with the given step callback
   * @param failsInPreparation a generation whose preparation fails after it kept something (or null)
   * @param failsInModel a generation whose model call fails at the first step
   */
  record Case(String name, Function<IntConsumer, Tensor> run, Runnable failsInPreparation, Runnable failsInModel,
      DiffusionPipeline pipeline, DiffusersTransformer model) implements AutoCloseable {
    @Override
    public void close() {
      model.close();
    }

    @Override
    public String toString() {
      return name;
    }
  }

  private static DiffusersTransformer model(String config) {
    return ModelRegistry.defaults().randomTransformer(config, 5, ScalarType.Float);
  }

  static Stream<String> pipelines() {
    return Stream.of("FLUX", "SD3", "Qwen-Image", "Z-Image", "Wan");
  }

  static Case build(String name) {
    torch.manual_seed(9);
    switch (name) {
      case "FLUX" -> {
        FluxTransformer2DModel m = (FluxTransformer2DModel) model(TinyConfigs.flux(true));
        FluxPipeline p = new FluxPipeline(m, FlowMatchEulerScheduler.flux());
        Tensor prompt = torch.randn(1, 5, 12);
        Tensor pooled = torch.randn(1, 6);
        return new Case(name, cb -> p.generate(new FluxPipeline.Request(prompt, pooled, prompt, pooled, 32, 32, 4, 3.5,
            4.0, false, 1, 1), cb),
            // RoPE tables are kept before the text conditioning finds pooled of the wrong batch
            () -> p.generate(new FluxPipeline.Request(prompt, torch.randn(3, 6), null, null, 32, 32, 4, 3.5, 1.0,
                false, 1, 1), null),
            () -> p.generate(new FluxPipeline.Request(torch.randn(1, 5, 7), torch.randn(1, 6), null, null, 32, 32, 4,
                3.5, 1.0, false, 1, 1), null), p, m);
      }
      case "SD3" -> {
        SD3Transformer2DModel m = (SD3Transformer2DModel) model(TinyConfigs.sd3(false));
        SD3Pipeline p = new SD3Pipeline(m, FlowMatchEulerScheduler.staticShift(3.0));
        Tensor prompt = torch.randn(1, 5, 12);
        Tensor pooled = torch.randn(1, 6);
        return new Case(name, cb -> p.generate(SD3Pipeline.Request.of(prompt, pooled, prompt, pooled, 32, 32, 4, 5.0,
            2), cb),
            // the prompt is kept before the negative prompt of another length fails to batch with it
            () -> p.generate(SD3Pipeline.Request.of(prompt, pooled, torch.randn(1, 5, 3), pooled, 32, 32, 4, 5.0, 2),
                null),
            () -> p.generate(SD3Pipeline.Request.of(torch.randn(1, 5, 7), pooled, null, null, 32, 32, 4, 1.0, 2), null),
            p, m);
      }
      case "Qwen-Image" -> {
        QwenImageTransformer2DModel m = (QwenImageTransformer2DModel) model(TinyConfigs.qwenImage());
        QwenImagePipeline p = new QwenImagePipeline(m, new FlowMatchEulerScheduler(1000, 1.0, true, 0.5, 0.9, 256,
            8192, 0.02));
        Tensor prompt = torch.randn(1, 5, 12);
        return new Case(name, cb -> p.generate(new QwenImagePipeline.Request(prompt, null, prompt, null, 32, 32, 4,
            4.0, 3), cb), null,
            () -> p.generate(new QwenImagePipeline.Request(torch.randn(1, 5, 7), null, null, null, 32, 32, 4, 4.0, 3),
                null), p, m);
      }
      case "Z-Image" -> {
        ZImageTransformer2DModel m = (ZImageTransformer2DModel) model(TinyConfigs.zImage());
        ZImagePipeline p = new ZImagePipeline(m, FlowMatchEulerScheduler.staticShift(3.0));
        List<Tensor> prompts = List.of(torch.randn(5, 10));
        // a terminal stretch cannot serve 1 step: fails after the captions were kept
        ZImagePipeline oneStep = new ZImagePipeline(m, new FlowMatchEulerScheduler(1000, 3.0, false, 0.5, 1.15, 256,
            4096, 0.02));
        return new Case(name, cb -> p.generate(new ZImagePipeline.Request(prompts, prompts, 32, 32, 4, 5.0, 0.0, 1.0,
            4), cb),
            () -> oneStep.generate(new ZImagePipeline.Request(prompts, null, 32, 32, 1, 0.0, 0.0, 1.0, 4), null),
            () -> p.generate(new ZImagePipeline.Request(List.of(torch.randn(5, 3)), null, 32, 32, 4, 0.0, 0.0, 1.0, 4),
                null), p, m);
      }
      case "Wan" -> {
        WanTransformer3DModel m = (WanTransformer3DModel) model(TinyConfigs.wan(false));
        WanPipeline p = new WanPipeline(m, FlowMatchEulerScheduler.staticShift(3.0));
        Tensor prompt = torch.randn(1, 6, 10);
        return new Case(name, cb -> p.generate(new WanPipeline.Request(prompt, prompt, 1, 32, 32, 4, 5.0, 5.0, 6), cb),
            null, () -> p.generate(new WanPipeline.Request(torch.randn(1, 6, 3), null, 1, 32, 32, 4, 5.0, 5.0, 6),
                null), p, m);
      }
      default -> throw new AssertionError(name);
    }
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("pipelines")
  void aGenerationKeepsNothingAfterItEndsFailsOrIsStopped(String name) {
    try (Case c = build(name)) {
      long before = NativeScope.liveKeptHandles();
      Tensor ok = c.run().apply(null);
      assertTrue(ok.isfinite().all().item_bool());
      assertEquals(before, NativeScope.liveKeptHandles(), name + ": a finished generation left tensors kept");
      // stopped mid-loop by its callback (how a server cancels)
      IllegalStateException stop = assertThrows(IllegalStateException.class, () -> c.run().apply(step -> {
        if (step == 1) {
          throw new IllegalStateException("cancelled at step 1");
        }
      }));
      assertEquals("cancelled at step 1", stop.getMessage());
      assertEquals(before, NativeScope.liveKeptHandles(), name + ": a cancelled generation left tensors kept");
      if (c.failsInPreparation() != null) {
        assertThrows(RuntimeException.class, c.failsInPreparation()::run);
        assertEquals(before, NativeScope.liveKeptHandles(), name + ": a failed preparation left tensors kept");
      }
      assertThrows(RuntimeException.class, c.failsInModel()::run);
      assertEquals(before, NativeScope.liveKeptHandles(), name + ": a failure in the model left tensors kept");
      // and the pipeline still works, bit for bit
      assertTrue(torch.equal(ok, c.run().apply(null)));
    }
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("pipelines")
  void aSecondEnableCacheIsRefusedAndTheFirstStaysInEffect(String name) {
    try (Case c = build(name)) {
      Tensor plain = c.run().apply(null);
      CacheOptions always = CacheOptions.of(DBCacheConfig.builder().fnComputeBlocks(1).maxWarmupSteps(2)
          .residualDiffThreshold(1.0).build());
      Tensor once;
      List<CacheStats> first;
      try (CacheHandle h = CacheDit.enableCache(c.pipeline(), always)) {
        once = c.run().apply(null);
        first = h.stats();
      }
      try (CacheHandle h = CacheDit.enableCache(c.pipeline(), always)) {
        IllegalStateException e = assertThrows(IllegalStateException.class,
            () -> CacheDit.enableCache(c.pipeline(), always));
        assertTrue(e.getMessage().contains("already enabled"), e.getMessage());
        if (c.model() instanceof FluxTransformer2DModel flux) {
          assertTrue(flux.usesFusedBlocks(), "the refused enable reverted the first one's block fusing");
        }
        Tensor again = c.run().apply(null);
        assertTrue(torch.equal(once, again), name + ": caching was disturbed by the refused enable");
        assertEquals(first.get(0).cachedSteps(), h.stats().get(0).cachedSteps());
        assertFalse(h.stats().get(0).cachedSteps().isEmpty());
      }
      assertTrue(torch.equal(plain, c.run().apply(null)), "closing restores the uncached pipeline");
      if (c.model() instanceof FluxTransformer2DModel flux) {
        assertFalse(flux.usesFusedBlocks());
      }
      assertSame(io.cachedit.models.common.BlockRunner.SEQUENTIAL, c.model().blockLists().get(0).runner());
    }
  }

  /** A second thread is refused, naming the pipeline, and so is enabling caching mid-generation (issue: shared instances). */
  @ParameterizedTest(name = "{0}")
  @MethodSource("pipelines")
  void aSecondThreadIsRefusedWhileAGenerationRuns(String name) throws Exception {
    try (Case c = build(name)) {
      java.util.concurrent.CountDownLatch inside = new java.util.concurrent.CountDownLatch(1);
      java.util.concurrent.CountDownLatch release = new java.util.concurrent.CountDownLatch(1);
      java.util.concurrent.atomic.AtomicReference<Throwable> failure = new java.util.concurrent.atomic.AtomicReference<>();
      Thread first = new Thread(() -> {
        try (PointerScope s = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
          c.run().apply(step -> {
            inside.countDown();
            try {
              release.await();
            } catch (InterruptedException e) {
              Thread.currentThread().interrupt();
            }
          });
        } catch (Throwable t) {
          failure.set(t);
        }
      }, "first-generation");
      first.start();
      assertTrue(inside.await(60, java.util.concurrent.TimeUnit.SECONDS));
      assertTrue(c.pipeline().generating());
      IllegalStateException second = assertThrows(IllegalStateException.class, () -> c.run().apply(null));
      assertTrue(second.getMessage().contains("already generating on thread \"first-generation\""), second.getMessage());
      IllegalStateException enable = assertThrows(IllegalStateException.class,
          () -> CacheDit.enableCache(c.pipeline(), CacheOptions.of(DBCacheConfig.builder().fnComputeBlocks(1)
              .bnComputeBlocks(0).build())));
      assertTrue(enable.getMessage().contains("generating on another thread"), enable.getMessage());
      release.countDown();
      first.join(60_000);
      assertEquals(null, failure.get());
      assertFalse(c.pipeline().generating());
      assertTrue(c.run().apply(null).numel() > 0, "generates again once the first has finished");
    }
  }
}
