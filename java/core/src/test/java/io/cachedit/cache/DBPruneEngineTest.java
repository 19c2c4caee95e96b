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

/** DBPrune (docs/algorithms.md section 4) on every forward pattern, including 3-5 where the reference fails. */
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
  void accumulatedDiffLimit_doesNotStopPruningAsInTheReference() {
    // the reference's pruned context never accumulates diffs, so max_accumulated_residual_diff_threshold
    // never trips for DBPrune; before, our per-block diffs summed up and pruning stopped after a step
    double[] p = {1, 1.01, 1.02, 1.03, 1.04, 1.05};
    try (SyntheticTransformer model = new SyntheticTransformer(ForwardPattern.PATTERN_1, 5, 17);
         Driver driver = new Driver(model).hiddenInput(torch.zeros(1, 8, 16))) {
      List<Integer> unlimited;
      try (CacheHandle h = enable(model, DBPruneConfig.builder().fnComputeBlocks(1).maxWarmupSteps(1)
          .residualDiffThreshold(0.05).build())) {
        driver.generate(p);
        unlimited = h.stats().get(0).prunedBlocks();
      }
      try (CacheHandle h = enable(model, DBPruneConfig.builder().fnComputeBlocks(1).maxWarmupSteps(1)
          .residualDiffThreshold(0.05).maxAccumulatedResidualDiffThreshold(0.02).build())) {
        driver.generate(p);
        CacheStats s = h.stats().get(0);
        assertEquals(unlimited, s.prunedBlocks());
        assertTrue(s.prunedBlocks().subList(2, 5).stream().allMatch(n -> n > 0), s.prunedBlocks().toString());
        assertTrue(s.decisions().stream().noneMatch(d -> d.reason() == DecisionReason.MAX_ACCUMULATED_DIFF));
      }
    }
  }

  @Test
  void forceReduceCalibratorVram_bf16StatesAndEveryFourthElementProbes() {
    double[] p = {1, 1, 1.01, 1.02, 1.02, 1.03};
    try (SyntheticTransformer model = new SyntheticTransformer(ForwardPattern.PATTERN_3, 4, 17);
         Driver driver = new Driver(model)) {
      DBPruneConfig.Builder base = DBPruneConfig.builder().fnComputeBlocks(1).maxWarmupSteps(1)
          .residualDiffThreshold(0.05);
      CacheStats full;
      CacheStats reduced;
      try (CacheHandle h = CacheDit.enableCache(DBCacheEngineTest.adapter(model, false),
          new CacheOptions(base.build(), TaylorSeerCalibratorConfig.ofOrder(1), List.of()))) {
        driver.generate(p);
        full = h.stats().get(0);
      }
      try (CacheHandle h = CacheDit.enableCache(DBCacheEngineTest.adapter(model, false),
          new CacheOptions(base.forceReduceCalibratorVram(true).build(), TaylorSeerCalibratorConfig.ofOrder(1),
              List.of()))) {
        driver.generate(p);
        reduced = h.stats().get(0);
      }
      // fp32 model: calibrator states in bf16 (half) and probes of a quarter of the channels
      assertTrue(reduced.bytesHeld() < full.bytesHeld() * 0.55, reduced.bytesHeld() + " vs " + full.bytesHeld());
      // the block-1 probe is the block input [..., ::4]: its diff is the relative L1 of those elements
      Tensor x0 = SyntheticTransformer.hiddenInput(7).add(SyntheticTransformer.constant(1.0));
      Tensor x2 = SyntheticTransformer.hiddenInput(7).add(SyntheticTransformer.constant(1.01));
      Tensor s0 = x0.slice(2, new org.bytedeco.pytorch.LongOptional(0), new org.bytedeco.pytorch.LongOptional(), 4);
      Tensor s2 = x2.slice(2, new org.bytedeco.pytorch.LongOptional(0), new org.bytedeco.pytorch.LongOptional(), 4);
      double expected = s0.sub(s2).abs().sum().item_double() / s0.abs().sum().item_double();
      assertEquals(expected, reduced.residualDiffs().get(2).get(0), 1e-6);
      double fullExpected = x0.sub(x2).abs().sum().item_double() / x0.abs().sum().item_double();
      assertEquals(fullExpected, full.residualDiffs().get(2).get(0), 1e-6);
      // without a calibrator the flag changes nothing (as in the reference)
      try (CacheHandle h = enable(model, base.forceReduceCalibratorVram(true).build())) {
        driver.generate(p);
        assertEquals(fullExpected, h.stats().get(0).residualDiffs().get(2).get(0), 1e-6);
      }
    }
  }
}
