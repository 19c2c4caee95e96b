package io.cachedit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.cachedit.adapter.AdapterRegistry;
import io.cachedit.adapter.BlockAdapter;
import io.cachedit.adapter.PatchFunctor;
import io.cachedit.error.UnsupportedModelException;
import io.cachedit.cache.CacheOptions;
import io.cachedit.cache.CacheStats;
import io.cachedit.cache.engine.CachedBlockRunner;
import io.cachedit.error.ConfigException;
import io.cachedit.cache.DBCacheConfig;
import io.cachedit.cache.ParamsModifier;
import io.cachedit.cache.TaylorSeerCalibratorConfig;
import io.cachedit.models.common.BlockRunner;
import io.cachedit.models.common.DiffusionPipeline;
import io.cachedit.models.common.ForwardPattern;
import io.cachedit.models.common.Transformer;
import io.cachedit.testing.Driver;
import io.cachedit.testing.SyntheticTransformer;
import io.cachedit.testing.SyntheticTransformer.Spec;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The facade: registry lookup, per-instance state, enable/disable, modifiers, auto mode, summary. */
class CacheDitTest {
  private PointerScope scope;

  @BeforeEach
  void open() {
    scope = new PointerScope();
  }

  @AfterEach
  void close() {
    scope.close();
  }

  /** A model class with its adapter registered: FLUX-like double (P1) + single (P3) lists. */
  static final class TwoListModel extends SyntheticTransformer {
    TwoListModel(long seed) {
      super(seed, 1, new Spec("transformer_blocks", ForwardPattern.PATTERN_1, 4),
          new Spec("single_transformer_blocks", ForwardPattern.PATTERN_3, 6));
    }
  }

  static AdapterRegistry registry() {
    return AdapterRegistry.builder().register(TwoListModel.class, m -> BlockAdapter.builder().transformer(m)
        .blocks(m, "transformer_blocks", ForwardPattern.PATTERN_1)
        .blocks(m, "single_transformer_blocks", ForwardPattern.PATTERN_3).build()).build();
  }

  static CacheOptions fast() {
    return CacheOptions.of(DBCacheConfig.builder().fnComputeBlocks(1).maxWarmupSteps(2).residualDiffThreshold(0.1)
        .build());
  }

  @Test
  void registeredModel_isOneLine_andInstancesAreIndependent() {
    try (TwoListModel a = new TwoListModel(1); TwoListModel b = new TwoListModel(1);
         Driver da = new Driver(a); Driver db = new Driver(b)) {
      CacheHandle ha = CacheDit.enableCache(registry().adapterFor(a), fast());
      assertEquals(2, ha.runners().size());
      da.generate(new double[] {1, 1, 1.01, 1.02});
      List<Tensor> plain = db.generate(new double[] {1, 1, 1.01, 1.02});
      assertSame(BlockRunner.SEQUENTIAL, b.blockLists().get(0).runner(), "the second instance is untouched");
      CacheHandle hb = CacheDit.enableCache(registry().adapterFor(b), fast());  // a second instance of the class is not "already cached"
      List<CacheStats> sa = CacheDit.summary(a);
      assertEquals(List.of(2, 3), sa.get(0).cachedSteps());
      assertEquals(List.of(), CacheDit.summary(b).get(0).cachedSteps());
      hb.close();
      ha.close();
      DBCacheEngineTestSupport.assertAllEqual(plain, da.generate(new double[] {1, 1, 1.01, 1.02}));
    }
  }

  @Test
  void unregisteredModel_errorSaysUseABlockAdapter() {
    try (SyntheticTransformer m = new SyntheticTransformer(ForwardPattern.PATTERN_3, 3, 1)) {
      UnsupportedModelException e = assertThrows(UnsupportedModelException.class,
          () -> CacheDit.enableCache(registry().adapterFor(m), fast()));
      assertTrue(e.getMessage().contains("BlockAdapter") && e.getMessage().contains("TwoListModel"), e.getMessage());
      assertThrows(IllegalArgumentException.class, () -> CacheDit.enableCache((Transformer) null));
      assertFalse(AdapterRegistry.defaults().supports(SyntheticTransformer.class));
    }
  }

  @Test
  void enablingTwiceThrowsAndLeavesTheFirstInPlace() {
    try (TwoListModel m = new TwoListModel(2)) {
      CacheHandle h = CacheDit.enableCache(registry().adapterFor(m), fast());
      IllegalStateException e = assertThrows(IllegalStateException.class,
          () -> CacheDit.enableCache(registry().adapterFor(m), fast()));
      assertTrue(e.getMessage().contains("already enabled"), e.getMessage());
      assertTrue(m.blockLists().get(0).runner() instanceof CachedBlockRunner);
      assertTrue(m.blockLists().get(1).runner() instanceof CachedBlockRunner);
      CacheDit.disableCache(m);
      assertTrue(h.isClosed());
      assertSame(BlockRunner.SEQUENTIAL, m.blockLists().get(1).runner());
      CacheDit.disableCache(m);  // idempotent
    }
  }

  @Test
  void fnPlusBnLargerThanAList_isRejectedNamingTheList() {
    try (TwoListModel m = new TwoListModel(3)) {
      ConfigException e = assertThrows(ConfigException.class, () -> CacheDit.enableCache(registry().adapterFor(m),
          CacheOptions.of(DBCacheConfig.builder().fnComputeBlocks(3).bnComputeBlocks(2).build())));
      assertTrue(e.getMessage().contains("transformer_blocks") && e.getMessage().contains("4 blocks"), e.getMessage());
      assertSame(BlockRunner.SEQUENTIAL, m.blockLists().get(0).runner(), "a failed enable installs nothing");
      // a modifier fixes it for the short list only
      try (CacheHandle h = CacheDit.enableCache(registry().adapterFor(m), CacheOptions.of(DBCacheConfig.builder().fnComputeBlocks(3)
          .bnComputeBlocks(2).build()).withParamsModifiers(List.of(ParamsModifier.of(DBCacheConfig.reset()
          .fnComputeBlocks(1).bnComputeBlocks(0)).forList("transformer_blocks"))))) {
        assertEquals(1, h.configs().get(0).fnComputeBlocks());
        assertEquals(3, h.configs().get(1).fnComputeBlocks());
      }
    }
  }

  @Test
  void oneLineDefault_adaptsTheProbeToShortLists_explicitDefaultsStayStrict() {
    assertEquals(DBCacheConfig.defaults(), CacheDit.defaultConfigFor(16), "long lists keep the reference F8B0");
    assertEquals(DBCacheConfig.defaults(), CacheDit.defaultConfigFor(57));
    assertEquals(3, CacheDit.defaultConfigFor(15).fnComputeBlocks());
    assertEquals(2, CacheDit.defaultConfigFor(8).fnComputeBlocks());
    assertEquals(1, CacheDit.defaultConfigFor(4).fnComputeBlocks());
    assertEquals(1, CacheDit.defaultConfigFor(1).fnComputeBlocks());
    assertEquals(DBCacheConfig.defaults().residualDiffThreshold(), CacheDit.defaultConfigFor(4).residualDiffThreshold());
    assertEquals(0, CacheDit.defaultConfigFor(4).bnComputeBlocks());
    try (TwoListModel m = new TwoListModel(7)) {  // lists of 4 and 6 blocks: F8B0 does not fit either
      try (CacheHandle h = CacheDit.enableCache(registry().adapterFor(m))) {
        assertEquals(1, h.configs().get(0).fnComputeBlocks());
        assertEquals(1, h.configs().get(1).fnComputeBlocks());
        assertEquals(8, h.configs().get(0).maxWarmupSteps(), "only Fn is adapted");
      }
      ConfigException e = assertThrows(ConfigException.class,
          () -> CacheDit.enableCache(registry().adapterFor(m), CacheOptions.defaults()));
      assertTrue(e.getMessage().contains("Fn_compute_blocks (8)") && e.getMessage().contains("4 blocks"), e.getMessage());
      assertSame(BlockRunner.SEQUENTIAL, m.blockLists().get(0).runner());
    }
  }

  @Test
  void paramsModifiers_perListContextsDecideIndependently() {
    try (TwoListModel m = new TwoListModel(4); Driver d = new Driver(m)) {
      BlockAdapter adapter = BlockAdapter.builder().transformer(m)
          .blocks(m, "transformer_blocks", ForwardPattern.PATTERN_1)
          .blocks(m, "single_transformer_blocks", ForwardPattern.PATTERN_3)
          .paramsModifiers(List.of(ParamsModifier.of(DBCacheConfig.reset().residualDiffThreshold(0.015)),
              ParamsModifier.of(DBCacheConfig.reset().residualDiffThreshold(0.5), TaylorSeerCalibratorConfig.ofOrder(1))))
          .build();
      try (CacheHandle h = CacheDit.enableCache(adapter, fast())) {
        d.generate(new double[] {1, 1, 1.01, 1.02, 1.03});
        List<CacheStats> s = h.stats();
        // 0.015: step 2 (0.01) caches, step 3 (0.02) computes, step 4 (0.01 against 1.02) caches
        assertEquals(List.of(2, 4), s.get(0).cachedSteps());
        assertTrue(s.get(1).cachedSteps().size() >= 2, "0.5 on the single blocks: " + s.get(1).cachedSteps());
        assertEquals("T1O1", s.get(1).calibratorTag());
        assertEquals("T0O0", s.get(0).calibratorTag());
        assertTrue(CacheDit.strify(m).startsWith("DBCache_F1B0_W2I1M0MC0_R0.5_T1O1_S"), CacheDit.strify(m));
        String md = s.get(0).markdown(true);
        assertTrue(md.contains("| Cache Steps | Diffs P00 |") && md.contains("Cached steps: [2, 4]"), md);
      }
    }
  }

  @Test
  void pipelineWithTwoTransformers_eachGetsItsOwnContexts() {
    try (SyntheticTransformer high = new SyntheticTransformer(ForwardPattern.PATTERN_2, 4, 5);
         SyntheticTransformer low = new SyntheticTransformer(ForwardPattern.PATTERN_2, 4, 6)) {
      DiffusionPipeline pipe = () -> List.of(high, low);
      BlockAdapter adapter = BlockAdapter.builder().pipeline(pipe)
          .blocks(high, "transformer_blocks", ForwardPattern.PATTERN_2)
          .blocks(low, "transformer_blocks", ForwardPattern.PATTERN_2).hasSeparateCfg(true)
          .paramsModifiers(List.of(ParamsModifier.of(DBCacheConfig.reset().maxWarmupSteps(3)),
              ParamsModifier.of(DBCacheConfig.reset().maxWarmupSteps(1))))
          .build();
      try (CacheHandle h = CacheDit.enableCache(adapter, fast()); Driver dh = new Driver(high).separateCfg(true)
          .explicitSteps(true); Driver dl = new Driver(low).separateCfg(true).explicitSteps(true)) {
        dh.generate(Driver.constantProbes(5, 1.0));  // high-noise steps
        dl.generate(Driver.constantProbes(4, 1.0));  // low-noise steps, counted from 0 by its own context
        List<CacheStats> s = CacheDit.summary(pipe);
        assertEquals(List.of(3, 4), s.get(0).cachedSteps());
        assertEquals(List.of(1, 2, 3), s.get(1).cachedSteps());
        assertEquals(List.of(1, 2, 3), s.get(1).cfgCachedSteps());
        CacheDit.disableCache(pipe);
        assertTrue(h.isClosed());
      }
    }
  }

  @Test
  void autoMode_findsTheLongestListWithAnAllowedPrefix() {
    try (SyntheticTransformer m = new SyntheticTransformer(9, 1, new Spec("norm_blocks", ForwardPattern.PATTERN_3, 9),
        new Spec("blocks", ForwardPattern.PATTERN_3, 3), new Spec("layers", ForwardPattern.PATTERN_3, 5))) {
      BlockAdapter adapter = BlockAdapter.builder().transformer(m).auto(ForwardPattern.PATTERN_3).build();
      assertEquals("layers", adapter.resolveTargets().get(0).listName());
      assertEquals("blocks", BlockAdapter.builder().transformer(m).auto(ForwardPattern.PATTERN_3)
          .preferLongest(false).build().resolveTargets().get(0).listName());
      assertThrows(UnsupportedModelException.class, () -> BlockAdapter.builder().transformer(m)
          .auto(ForwardPattern.PATTERN_0).build().resolveTargets());
      UnsupportedModelException e = assertThrows(UnsupportedModelException.class, () -> BlockAdapter.builder()
          .transformer(m).blocks(m, "layers", ForwardPattern.PATTERN_1).build().resolveTargets());
      assertTrue(e.getMessage().contains("PatchFunctor"), e.getMessage());
    }
  }

  @Test
  void patchFunctor_isAppliedOnEnableAndRevertedOnDisable() {
    AtomicInteger applied = new AtomicInteger();
    AtomicInteger reverted = new AtomicInteger();
    PatchFunctor functor = new PatchFunctor() {
      @Override
      public boolean apply(Transformer t) {
        applied.incrementAndGet();
        return true;
      }

      @Override
      public void revert(Transformer t) {
        reverted.incrementAndGet();
      }
    };
    try (SyntheticTransformer m = new SyntheticTransformer(ForwardPattern.PATTERN_3, 3, 1)) {
      BlockAdapter adapter = BlockAdapter.builder().transformer(m).blocks(m, "transformer_blocks",
          ForwardPattern.PATTERN_3).patchFunctor(functor).build();
      CacheHandle h = CacheDit.enableCache(adapter, fast());
      assertEquals(1, applied.get());
      h.close();
      h.close();
      assertEquals(1, reverted.get());
      // a failing enable reverts the patch too
      assertThrows(ConfigException.class, () -> CacheDit.enableCache(adapter,
          CacheOptions.of(DBCacheConfig.builder().fnComputeBlocks(4).build())));
      assertEquals(2, applied.get());
      assertEquals(2, reverted.get());
    }
  }

  @Test
  void paramsModifiers_moreThanTheCachedListsIsAnErrorNamingThem() {
    // the caching guide's FLUX example: two modifiers, but the default (fused) adapter caches one list
    try (io.cachedit.models.common.DiffusersTransformer flux = io.cachedit.pipeline.ModelRegistry.defaults()
        .randomTransformer(io.cachedit.models.TinyConfigs.flux(true), 1, org.bytedeco.pytorch.global.torch.ScalarType.Float)) {
      CacheOptions two = fast().withParamsModifiers(List.of(
          ParamsModifier.of(DBCacheConfig.reset().residualDiffThreshold(0.08)),
          ParamsModifier.of(DBCacheConfig.reset().residualDiffThreshold(0.16))));
      ConfigException e = assertThrows(ConfigException.class, () -> CacheDit.enableCache(flux, two));
      assertTrue(e.getMessage().contains("2 modifier(s) for 1 cached block list(s)")
          && e.getMessage().contains("transformer_blocks of FluxTransformer2DModel"), e.getMessage());
      assertSame(BlockRunner.SEQUENTIAL, flux.blockLists().get(0).runner(), "nothing installed");
      assertFalse(((io.cachedit.models.flux.FluxTransformer2DModel) flux).usesFusedBlocks(), "fusing reverted");
      // with the two-list adapter the same two modifiers apply, one per list
      try (CacheHandle h = CacheDit.enableCache(io.cachedit.adapter.FluxAdapters.separateLists(
          (io.cachedit.models.flux.FluxTransformer2DModel) flux), two)) {
        assertEquals(0.08, h.configs().get(0).residualDiffThreshold());
        assertEquals(0.16, h.configs().get(1).residualDiffThreshold());
      }
    }
  }

  @Test
  void paramsModifiers_matchByListName() {
    try (TwoListModel m = new TwoListModel(5)) {
      BlockAdapter adapter = registry().adapterFor(m);
      CacheOptions named = fast().withParamsModifiers(List.of(ParamsModifier.of(DBCacheConfig.reset()
          .residualDiffThreshold(0.3)).forList("single_transformer_blocks")));
      try (CacheHandle h = CacheDit.enableCache(adapter, named)) {
        assertEquals(0.1, h.configs().get(0).residualDiffThreshold(), "unnamed list keeps the base");
        assertEquals(0.3, h.configs().get(1).residualDiffThreshold());
      }
      // fewer unnamed modifiers than lists, a name no list has, named and unnamed mixed, one list named twice
      for (List<ParamsModifier> bad : List.of(
          List.of(ParamsModifier.of(DBCacheConfig.reset().residualDiffThreshold(0.3))),
          List.of(ParamsModifier.of(DBCacheConfig.reset().residualDiffThreshold(0.3)).forList("blocks")),
          List.of(ParamsModifier.of(DBCacheConfig.reset().residualDiffThreshold(0.3)).forList("transformer_blocks"),
              ParamsModifier.of(DBCacheConfig.reset().residualDiffThreshold(0.2))),
          List.of(ParamsModifier.of(DBCacheConfig.reset().residualDiffThreshold(0.3)).forList("transformer_blocks"),
              ParamsModifier.of(DBCacheConfig.reset().residualDiffThreshold(0.2)).forList("transformer_blocks")))) {
        ConfigException e = assertThrows(ConfigException.class, () -> CacheDit.enableCache(adapter,
            fast().withParamsModifiers(bad)));
        assertTrue(e.getMessage().contains("params_modifiers"), e.getMessage());
        assertSame(BlockRunner.SEQUENTIAL, m.blockLists().get(0).runner());
        assertSame(BlockRunner.SEQUENTIAL, m.blockLists().get(1).runner());
      }
    }
  }

  @Test
  void patchFunctor_revertsOnlyWhatItChanged() {
    AtomicInteger reverted = new AtomicInteger();
    PatchFunctor alreadyInShape = new PatchFunctor() {
      @Override
      public boolean apply(Transformer t) {
        return false;  // the transformer already has the form
      }

      @Override
      public void revert(Transformer t) {
        reverted.incrementAndGet();
      }
    };
    try (SyntheticTransformer m = new SyntheticTransformer(ForwardPattern.PATTERN_3, 3, 1)) {
      BlockAdapter adapter = BlockAdapter.builder().transformer(m).blocks(m, "transformer_blocks",
          ForwardPattern.PATTERN_3).patchFunctor(alreadyInShape).build();
      CacheDit.enableCache(adapter, fast()).close();
      assertThrows(ConfigException.class, () -> CacheDit.enableCache(adapter,
          CacheOptions.of(DBCacheConfig.builder().fnComputeBlocks(4).build())));
      assertEquals(0, reverted.get(), "a functor that changed nothing is never reverted");
    }
  }

  /** Bridges to the engine test's helper without a dependency between test packages' internals. */
  static final class DBCacheEngineTestSupport {
    static void assertAllEqual(List<Tensor> a, List<Tensor> b) {
      assertEquals(a.size(), b.size());
      for (int i = 0; i < a.size(); i++) {
        assertTrue(torch.equal(a.get(i), b.get(i)), "call " + i);
      }
    }
  }
}
