package io.cachedit.models;

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
import io.cachedit.models.common.BlockList;
import io.cachedit.models.common.DiffusersTransformer;
import io.cachedit.models.common.ForwardInputs;
import io.cachedit.models.common.SdpBackend;
import io.cachedit.models.common.Sdpa;
import io.cachedit.pipeline.ModelRegistry;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * What every model must do : shapes, exact save/load round trip,
 * caching at threshold 0 bit-identical to uncached, caching that runs and reports stats, disable
 * restoring outputs, fp32 vs bf16/fp16 agreement within their precision.
 */
class ModelContractTest {
  private PointerScope scope;

  @BeforeEach
  void open() {
    scope = new PointerScope();
  }

  @AfterEach
  void close() {
    scope.close();
  }

  static Stream<ModelSpec> models() {
    return ModelSpecs.all().stream();
  }

  static List<Tensor> loop(DiffusersTransformer model, ModelSpec spec, int steps) {
    return ModelSpecs.loop(model, spec, spec.inputs().apply(11), steps);
  }



  @ParameterizedTest(name = "{0}")
  @MethodSource("models")
  void forwardSaveLoadAndDtypes(ModelSpec spec, @TempDir Path dir) {
    try (DiffusersTransformer model = ModelRegistry.defaults().randomTransformer(spec.configJson(), 3, ScalarType.Float)) {
      Map<String, Tensor> in = spec.inputs().apply(5);
      Tensor out = model.forward(new ForwardInputs(in, spec.values()), null);
      assertTrue(out.isfinite().all().item_bool(), "finite output");
      assertEquals(in.get(spec.hiddenKey()).size(0), out.size(0));
      ModelRegistry.save(model, dir);
      try (DiffusersTransformer loaded = ModelRegistry.defaults().loadTransformer(dir, ScalarType.Float)) {
        assertEquals(model.parameters().keySet(), loaded.parameters().keySet());
        assertTrue(torch.equal(out, loaded.forward(new ForwardInputs(in, spec.values()), null)), "round trip exact");
      }
      for (ScalarType low : new ScalarType[] {ScalarType.BFloat16, ScalarType.Half}) {
        try (DiffusersTransformer reduced = ModelRegistry.defaults().loadTransformer(dir, low)) {
          Tensor r = reduced.forward(new ForwardInputs(in, spec.values()), null).to(ScalarType.Float);
          double scale = out.abs().max().item_double();
          double err = r.sub(out).abs().max().item_double() / scale;
          double limit = low == ScalarType.BFloat16 ? 0.06 : 0.01;
          assertTrue(err < limit && err > 0, spec + " " + low + " relative error " + err);
        }
      }
    }
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("models")
  void cacheContract(ModelSpec spec) {
    try (DiffusersTransformer model = ModelRegistry.defaults().randomTransformer(spec.configJson(), 4, ScalarType.Float)) {
      List<Tensor> plain = loop(model, spec, 6);
      try (CacheHandle h = CacheDit.enableCache(model, CacheOptions.of(DBCacheConfig.builder().fnComputeBlocks(1)
          .maxWarmupSteps(0).residualDiffThreshold(0.0).build()))) {
        List<String> names = new ArrayList<>();
        for (BlockList<?> l : model.blockLists()) {
          names.add(l.name());
        }
        assertEquals(spec.lists(), names);
        List<Tensor> same = loop(model, spec, 6);
        for (int i = 0; i < plain.size(); i++) {
          assertTrue(torch.equal(plain.get(i), same.get(i)), spec + " step " + i);
        }
      }
      try (CacheHandle h = CacheDit.enableCache(model, CacheOptions.of(DBCacheConfig.builder().fnComputeBlocks(1)
          .maxWarmupSteps(2).residualDiffThreshold(1.0).build()))) {
        List<Tensor> cached = loop(model, spec, 6);
        CacheStats s = CacheDit.summary(model).get(0);
        assertEquals(List.of(2, 3, 4, 5), s.cachedSteps());
        assertTrue(s.idealSpeedup() > 1.0);
        boolean differs = false;
        for (int i = 0; i < cached.size(); i++) {
          assertTrue(cached.get(i).isfinite().all().item_bool());
          differs |= !torch.equal(plain.get(i), cached.get(i));
        }
        assertTrue(differs, "cached steps change the output");
      }
      List<Tensor> after = loop(model, spec, 6);
      for (int i = 0; i < plain.size(); i++) {
        assertTrue(torch.equal(plain.get(i), after.get(i)), "disable restores " + spec);
      }
      assertFalse(model.blockLists().isEmpty());
    }
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("models")
  void enableTwice_isRefusedAndTheFirstCacheStaysInEffect(ModelSpec spec) {
    try (DiffusersTransformer model = ModelRegistry.defaults().randomTransformer(spec.configJson(), 4, ScalarType.Float)) {
      List<Tensor> plain = loop(model, spec, 6);
      CacheOptions always = CacheOptions.of(DBCacheConfig.builder().fnComputeBlocks(1).maxWarmupSteps(2)
          .residualDiffThreshold(1.0).build());
      List<Tensor> once;
      try (CacheHandle h = CacheDit.enableCache(model, always)) {
        once = loop(model, spec, 6);
      }
      try (CacheHandle h = CacheDit.enableCache(model, always)) {
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> CacheDit.enableCache(model, always));
        assertTrue(e.getMessage().contains("already enabled"), e.getMessage());
        List<Tensor> again = loop(model, spec, 6);
        for (int i = 0; i < once.size(); i++) {
          assertTrue(torch.equal(once.get(i), again.get(i)), spec + ": the refused enable changed step " + i);
        }
        assertEquals(List.of(2, 3, 4, 5), h.stats().get(0).cachedSteps());
        assertFalse(h.isClosed());
      }
      List<Tensor> after = loop(model, spec, 6);
      for (int i = 0; i < plain.size(); i++) {
        assertTrue(torch.equal(plain.get(i), after.get(i)), "disable restores " + spec);
      }
    }
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("models")
  void aClosedModelFailsWithAnErrorNamingIt(ModelSpec spec) {
    DiffusersTransformer model = ModelRegistry.defaults().randomTransformer(spec.configJson(), 4, ScalarType.Float);
    model.close();
    model.close();  // idempotent
    IllegalStateException e = assertThrows(IllegalStateException.class,
        () -> model.forward(new ForwardInputs(spec.inputs().apply(5), spec.values()), null));
    assertTrue(e.getMessage().contains(model.className()) && e.getMessage().contains("closed"), e.getMessage());
    assertThrows(IllegalStateException.class, model::parameters);
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("models")
  void attentionIsAStrategyOfTheInstance(ModelSpec spec) {
    try (DiffusersTransformer a = ModelRegistry.defaults().randomTransformer(spec.configJson(), 4, ScalarType.Float);
         DiffusersTransformer b = ModelRegistry.defaults().randomTransformer(spec.configJson(), 4, ScalarType.Float)) {
      Map<String, Tensor> in = spec.inputs().apply(5);
      Tensor reference = a.forward(new ForwardInputs(in, spec.values()), null);
      java.util.concurrent.atomic.AtomicInteger calls = new java.util.concurrent.atomic.AtomicInteger();
      a.setAttention((q, k, v, mask) -> {
        calls.incrementAndGet();
        return Sdpa.AUTO.attend(q, k, v, mask);
      });
      // Same attention values; but a model whose default path is a fused kernel (FLUX's token-major
      // attention) feeds its projections other tensor layouts than the strategy path, and OpenBLAS's
      // kernels may then sum in another order (its Haswell kernels: 1e-6 apart; SkylakeX: equal)
      Tensor viaStrategy = a.forward(new ForwardInputs(in, spec.values()), null);
      assertTrue(torch.allclose(reference, viaStrategy, 1e-5, 1e-5, false),
          spec + ": " + reference.sub(viaStrategy).abs().max().item_double());
      assertTrue(calls.get() > 0, "the model computes attention through its strategy");
      int seen = calls.get();
      b.forward(new ForwardInputs(in, spec.values()), null);
      assertEquals(seen, calls.get(), "another instance of the class is not affected");
      b.setAttentionBackend(SdpBackend.MATH);
      double err = reference.sub(b.forward(new ForwardInputs(in, spec.values()), null)).abs().max().item_double();
      assertTrue(err < 1e-4, spec + ": the math composite differs from libtorch's attention by " + err);
      a.setAttention(null);
      assertEquals(Sdpa.AUTO, a.attention());
    }
  }

  static long[] shape(Tensor t) {
    return t.sizes().vec().get();
  }

  static void assertShape(long[] expected, Tensor t) {
    assertArrayEquals(expected, shape(t));
  }
}
