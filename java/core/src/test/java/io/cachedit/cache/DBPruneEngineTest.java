package io.cachedit.cache;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.cachedit.CacheDit;
import io.cachedit.CacheHandle;
import io.cachedit.models.common.ForwardPattern;
import io.cachedit.testing.Driver;
import io.cachedit.testing.SyntheticTransformer;
import java.util.ArrayList;
import java.util.List;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** DBPrune (SPEC 4) on every forward pattern, including 3-5 where the reference fails. */
class DBPruneEngineTest {
  private PointerScope scope;

  @BeforeEach
  void open() {
    scope = new PointerScope();
  }

  @AfterEach
  void close() {
    scope.close();
  }

  private static CacheHandle enable(SyntheticTransformer model, DBPruneConfig config) {
    return CacheDit.enableCache(DBCacheEngineTest.adapter(model, false), CacheOptions.of(config));
  }

  @ParameterizedTest
  @EnumSource(ForwardPattern.class)
  void everyPattern_prunesPredictablyAndThresholdZeroIsExact(ForwardPattern pattern) {
    try (SyntheticTransformer model = new SyntheticTransformer(pattern, 4, 17);
         Driver driver = new Driver(model).hiddenInput(torch.zeros(1, 8, 16))) {
      double[] p = Driver.constantProbes(5, 1.0);
      List<Tensor> uncached = driver.generate(p);
      try (CacheHandle h = enable(model, DBPruneConfig.builder().fnComputeBlocks(1).bnComputeBlocks(1)
          .maxWarmupSteps(1).residualDiffThreshold(0.0).build())) {
        DBCacheEngineTest.assertAllEqual(uncached, driver.generate(p));
      }
      try (CacheHandle h = enable(model, DBPruneConfig.builder().fnComputeBlocks(1).bnComputeBlocks(1)
          .maxWarmupSteps(1).residualDiffThreshold(0.05).build())) {
        List<Tensor> pruned = driver.generate(p);
        CacheStats s = h.stats().get(0);
        // blocks 1 and 2 are prunable; their inputs do not change after step 0
        assertEquals(List.of(0, 2, 2, 2, 2), s.prunedBlocks());
        assertEquals(List.of(4, 4, 4, 4, 4), s.actualBlocks());
        assertEquals(8.0 / 20, s.prunedRatio(), 1e-12);
        assertEquals(List.of(1, 2, 3, 4), s.cachedSteps());
        assertEquals(20.0 / 12, s.idealSpeedup(), 1e-12);
        // the reused residuals reproduce the computed outputs up to rounding
        for (int i = 0; i < p.length; i++) {
          double err = pruned.get(i).sub(uncached.get(i)).abs().max().item_double();
          assertTrue(err < 1e-5, "call " + i + " error " + err);
        }
        assertTrue(s.markdown(false).contains("Dynamic Block Prune Ratio: 40.00% (8/20)"), s.markdown(false));
      }
    }
  }

  @Test
  void nonPruneBlockIdsAndStepLimitsPerStep() {
    try (SyntheticTransformer model = new SyntheticTransformer(ForwardPattern.PATTERN_1, 5, 17);
         Driver driver = new Driver(model)) {
      try (CacheHandle h = enable(model, DBPruneConfig.builder().fnComputeBlocks(1).bnComputeBlocks(1)
          .nonPruneBlockIds(List.of(2, 9)).maxWarmupSteps(1).residualDiffThreshold(0.05).build())) {
        driver.generate(Driver.constantProbes(3, 1.0));
        assertEquals(List.of(0, 2, 2), h.stats().get(0).prunedBlocks(), "blocks 1 and 3 only");
      }
      // a step counts once against max_cached_steps: the first step may prune all its blocks
      try (CacheHandle h = enable(model, DBPruneConfig.builder().fnComputeBlocks(1).bnComputeBlocks(1)
          .maxCachedSteps(1).maxWarmupSteps(1).residualDiffThreshold(0.05).build())) {
        driver.generate(Driver.constantProbes(4, 1.0));
        assertEquals(List.of(0, 3, 0, 0), h.stats().get(0).prunedBlocks());
      }
    }
  }

  @Test
  void blockInputDiffIsTheProbe() {
    try (SyntheticTransformer model = new SyntheticTransformer(ForwardPattern.PATTERN_3, 3, 17);
         Driver driver = new Driver(model).hiddenInput(torch.zeros(1, 8, 16));
         CacheHandle h = enable(model, DBPruneConfig.builder().fnComputeBlocks(1).bnComputeBlocks(1)
             .maxWarmupSteps(1).residualDiffThreshold(0.1).build())) {
      driver.generate(new double[] {1.0, 1.05, 1.5});
      CacheStats s = h.stats().get(0);
      // block 1's input is the probe itself: diffs 0.05 (pruned) then 0.5 (computed)
      assertEquals(0.05, s.residualDiffs().get(1).get(0), 1e-6);
      assertEquals(0.5, s.residualDiffs().get(2).get(0), 1e-6);
      assertEquals(List.of(0, 1, 0), s.prunedBlocks());
    }
  }

  @Test
  void dynamicThreshold_relaxesFromTheStepsFirstDiffs() {
    DBPruneConfig config = DBPruneConfig.builder().residualDiffThreshold(0.04).enableDynamicPruneThreshold(true)
        .build();
    BranchState st = new BranchState(null, null);
    assertEquals(0.04, CachedBlockRunner.pruneThreshold(config, st, 3));  // no diffs yet this step
    st.pruneDiffs.put(3, new ArrayList<>(List.of(0.05, -2.0, 0.06)));
    assertEquals(0.055 * 1.25, CachedBlockRunner.pruneThreshold(config, st, 3), 1e-12);
    st.pruneDiffs.put(3, new ArrayList<>(List.of(0.07, 0.09)));  // relaxed 0.1 >= cap 0.08: back to base
    assertEquals(0.04, CachedBlockRunner.pruneThreshold(config, st, 3));
    st.pruneDiffs.put(3, new ArrayList<>(List.of(0.01, 0.01, 0.01, 0.01, 0.01, 0.5)));  // only the first 5 count
    assertEquals(0.04, CachedBlockRunner.pruneThreshold(config, st, 3), "max(base, relaxed)");
    DBPruneConfig capped = config.toBuilder().maxDynamicPruneThreshold(0.2).build();
    st.pruneDiffs.put(3, new ArrayList<>(List.of(0.07, 0.09)));
    assertEquals(0.1, CachedBlockRunner.pruneThreshold(capped, st, 3), 1e-12);
    assertFalse(DBPruneConfig.builder().build().enableDynamicPruneThreshold());
    st.close();
  }
}
