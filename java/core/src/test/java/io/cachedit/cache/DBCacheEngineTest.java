package io.cachedit.cache;

import io.cachedit.error.ConfigException;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.cachedit.CacheDit;
import io.cachedit.CacheHandle;
import io.cachedit.adapter.BlockAdapter;
import io.cachedit.kernels.Tensors;
import io.cachedit.models.common.BlockIO;
import io.cachedit.models.common.BlockList;
import io.cachedit.models.common.ForwardPattern;
import io.cachedit.testing.Driver;
import io.cachedit.testing.SyntheticTransformer;
import java.util.List;
import java.util.Map;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** DBCache behaviour of docs/algorithms.md sections 3, 5, 6, 8.2 pinned on synthetic block stacks with predictable decisions. */
class DBCacheEngineTest {
  private PointerScope scope;

  @BeforeEach
  void open() {
    scope = new PointerScope();
  }

  @AfterEach
  void close() {
    scope.close();
  }

  static BlockAdapter adapter(SyntheticTransformer model, boolean separateCfg) {
    BlockList<?> list = model.blockLists().get(0);
    return BlockAdapter.builder().transformer(model).blocks(model, list.name(), list.pattern())
        .hasSeparateCfg(separateCfg).build();
  }

  static CacheOptions options(Settings<?> settings) {
    if (settings instanceof DBCacheConfig.Builder b) {
      return CacheOptions.of(b.build());
    }
    return CacheOptions.of(((DBPruneConfig.Builder) settings).build());
  }

  static CacheStats stats(CacheHandle handle) {
    return handle.stats().get(0);
  }

  static void assertAllEqual(List<Tensor> expected, List<Tensor> actual) {
    assertEquals(expected.size(), actual.size());
    for (int i = 0; i < expected.size(); i++) {
      assertTrue(torch.equal(expected.get(i), actual.get(i)), "call " + i + " differs");
    }
  }

  static double[] probes(double... values) {
    return values;
  }

  // ---- invariants ------------------------------------------------------------------------------

  @ParameterizedTest
  @EnumSource(ForwardPattern.class)
  void thresholdZeroAndDisable_areBitIdenticalToUncached(ForwardPattern pattern) {
    try (SyntheticTransformer model = new SyntheticTransformer(pattern, 6, 11);
         Driver driver = new Driver(model).feedback(true)) {
      double[] p = {1, 1, 1.01, 1.02, 1.02, 1.5, 1.51, 1.52, 1.53, 1.54, 1.55, 1.56};
      List<Tensor> uncached = driver.generate(p);

      try (CacheHandle h = CacheDit.enableCache(adapter(model, false),
          options(DBCacheConfig.builder().residualDiffThreshold(0.0).maxWarmupSteps(0).fnComputeBlocks(1)))) {
        assertAllEqual(uncached, driver.generate(p));
        assertEquals(List.of(), stats(h).cachedSteps());
      }
      assertAllEqual(uncached, driver.generate(p));  // after disable

      try (CacheHandle h = CacheDit.enableCache(adapter(model, false),
          options(DBCacheConfig.builder().residualDiffThreshold(0.1).maxWarmupSteps(2).fnComputeBlocks(1)))) {
        List<Tensor> cached = driver.generate(p);
        assertFalse(stats(h).cachedSteps().isEmpty(), "caching must actually happen for this test to mean anything");
        boolean differs = false;
        for (int i = 0; i < cached.size(); i++) {
          differs |= !torch.equal(uncached.get(i), cached.get(i));
        }
        assertTrue(differs);
        CacheDit.disableCache(model);
        assertTrue(h.isClosed());
      }
      assertAllEqual(uncached, driver.generate(p));  // disableCache(target) restored the runner
    }
  }

  @Test
  void sameSeedTwice_identicalOutputsAndStats() {
    List<List<Tensor>> outs = new java.util.ArrayList<>();
    List<CacheStats> all = new java.util.ArrayList<>();
    for (int run = 0; run < 2; run++) {
      SyntheticTransformer model = new SyntheticTransformer(ForwardPattern.PATTERN_1, 6, 5);
      Driver driver = new Driver(model).feedback(true).explicitSteps(true);
      try (CacheHandle h = CacheDit.enableCache(adapter(model, false), options(DBCacheConfig.builder()
          .fnComputeBlocks(1).maxWarmupSteps(2).residualDiffThreshold(0.2)))) {
        outs.add(driver.generate(probes(1, 1, 1.01, 1.1, 1.3, 1.31, 1.33, 1.6, 1.61, 1.62)));
        all.add(stats(h));
      }
    }
    assertAllEqual(outs.get(0), outs.get(1));
    assertEquals(all.get(0), all.get(1));
  }

  // ---- the decision procedure (docs/algorithms.md sections 3.4-3.7) ---------------------------------------------------------

  @Test
  void decisions_probeIsFnResidualAgainstLastComputedStep() {
    try (SyntheticTransformer model = new SyntheticTransformer(ForwardPattern.PATTERN_3, 4, 3);
         Driver driver = new Driver(model)) {
      try (CacheHandle h = CacheDit.enableCache(adapter(model, false), options(DBCacheConfig.builder()
          .fnComputeBlocks(1).maxWarmupSteps(2).residualDiffThreshold(0.1)))) {
        driver.generate(probes(1.0, 1.0, 1.05, 1.08, 1.2, 1.25, 1.5));
        CacheStats s = stats(h);
        assertEquals(List.of(2, 3, 5), s.cachedSteps());
        // diffs against the last *computed* step's probe: 1.0 for steps 2-4, 1.2 for steps 5-6
        Map<Integer, List<Double>> d = s.residualDiffs();
        assertEquals(0.05, d.get(2).get(0), 1e-5);
        assertEquals(0.08, d.get(3).get(0), 1e-5);
        assertEquals(0.2, d.get(4).get(0), 1e-5);
        assertEquals(0.05 / 1.2, d.get(5).get(0), 1e-5);
        assertEquals(0.25, d.get(6).get(0), 1e-5);
        assertFalse(d.containsKey(0) || d.containsKey(1), "warm-up steps record no diff");
        assertEquals(3, s.accumulatedCachedSteps());
        assertEquals(7, s.accumulatedExecutedSteps());
        assertEquals(4 * 7, s.blocksTotal());
        assertEquals(4 * 4 + 1 * 3, s.blocksComputed());
      }
    }
  }

  @Test
  void decisions_thresholdIsStrict() {
    for (double threshold : new double[] {0.25, 0.2500001}) {
      try (SyntheticTransformer model = new SyntheticTransformer(ForwardPattern.PATTERN_3, 3, 3);
           Driver driver = new Driver(model).hiddenInput(torch.zeros(1, 8, 16))) {
        try (CacheHandle h = CacheDit.enableCache(adapter(model, false), options(DBCacheConfig.builder()
            .fnComputeBlocks(1).maxWarmupSteps(1).residualDiffThreshold(threshold)))) {
          driver.generate(probes(1.0, 1.25));
          assertEquals(0.25, stats(h).residualDiffs().get(1).get(0), 0.0, "exact diff");
          assertEquals(threshold == 0.25 ? List.of() : List.of(1), stats(h).cachedSteps());
        }
      }
    }
  }

  private List<Integer> cachedSteps(DBCacheConfig.Builder config, double[] probes) {
    try (SyntheticTransformer model = new SyntheticTransformer(ForwardPattern.PATTERN_3, 3, 3);
         Driver driver = new Driver(model);
         CacheHandle h = CacheDit.enableCache(adapter(model, false), options(config.fnComputeBlocks(1)))) {
      driver.generate(probes);
      return stats(h).cachedSteps();
    }
  }

  @Test
  void gates_warmupWithInterval() {
    // W=8, I=3: steps 0, 3, 6 are forced to compute; 1, 2, 4, 5, 7 are eligible (docs/algorithms.md section 3.4)
    List<Integer> steps = cachedSteps(DBCacheConfig.builder().maxWarmupSteps(8).warmupInterval(3),
        Driver.constantProbes(10, 1.0));
    assertEquals(List.of(1, 2, 4, 5, 7, 8, 9), steps);
  }

  @Test
  void gates_maxCachedSteps() {
    assertEquals(List.of(2, 3), cachedSteps(DBCacheConfig.builder().maxWarmupSteps(2).maxCachedSteps(2),
        Driver.constantProbes(8, 1.0)));
  }

  @Test
  void gates_maxContinuousCachedStepsIsATrueRunLength() {
    // runs of at most 2 cached steps, each followed by a computed step that resets the run
    assertEquals(List.of(1, 2, 4, 5, 7, 8), cachedSteps(DBCacheConfig.builder().maxWarmupSteps(1)
        .maxContinuousCachedSteps(2), Driver.constantProbes(9, 1.0)));
    assertEquals(List.of(), cachedSteps(DBCacheConfig.builder().maxWarmupSteps(1).maxContinuousCachedSteps(0),
        Driver.constantProbes(5, 1.0)));
  }

  @Test
  void gates_accumulatedDiffCapIsMonotone() {
    assertEquals(List.of(2, 3, 4), cachedSteps(DBCacheConfig.builder().maxWarmupSteps(2)
        .maxAccumulatedResidualDiffThreshold(0.12), probes(1, 1, 1.05, 1.05, 1.05, 1.05, 1.05, 1.05)));
  }

  @Test
  void gates_thresholdSentinels() {
    try (SyntheticTransformer model = new SyntheticTransformer(ForwardPattern.PATTERN_3, 3, 3);
         Driver driver = new Driver(model);
         CacheHandle h = CacheDit.enableCache(adapter(model, false), options(DBCacheConfig.builder()
             .fnComputeBlocks(1).maxWarmupSteps(2).residualDiffThreshold(1.0)))) {
      driver.generate(probes(1, 1, 5, 50, 500));  // >= 1: pure static reuse after warm-up
      assertEquals(List.of(2, 3, 4), stats(h).cachedSteps());
      assertEquals(-1.0, stats(h).residualDiffs().get(3).get(0));
    }
    assertEquals(List.of(), cachedSteps(DBCacheConfig.builder().maxWarmupSteps(0).residualDiffThreshold(0),
        Driver.constantProbes(5, 1.0)));
    // a negative threshold is a config error, not a silent "never"
    io.cachedit.error.ConfigException e = assertThrows(io.cachedit.error.ConfigException.class,
        () -> DBCacheConfig.builder().residualDiffThreshold(-1));
    assertEquals("residual_diff_threshold", e.field());
  }

  @Test
  void cachedStep_runsBnOnFnOutputPlusCachedMiddleResidual() {
    try (SyntheticTransformer model = new SyntheticTransformer(ForwardPattern.PATTERN_1, 5, 21);
         Driver driver = new Driver(model)) {
      @SuppressWarnings("unchecked")
      BlockList<SyntheticTransformer.Args> list = (BlockList<SyntheticTransformer.Args>) model.blockLists().get(0);
      Tensor h0 = SyntheticTransformer.hiddenInput(7);
      Tensor e0 = SyntheticTransformer.encoderInput(7);
      SyntheticTransformer.Args computeArgs = new SyntheticTransformer.Args(SyntheticTransformer.constant(1.0), null);
      SyntheticTransformer.Args cacheArgs = new SyntheticTransformer.Args(SyntheticTransformer.constant(1.01), null);
      // expected, built from the blocks themselves: F=1, Mn = blocks 1..2, Bn = blocks 3..4
      BlockIO fnAtCompute = list.runRange(0, 1, new BlockIO(h0, e0), computeArgs);
      BlockIO mnAtCompute = list.runRange(1, 3, fnAtCompute, computeArgs);
      Tensor residual = mnAtCompute.hidden().sub(fnAtCompute.hidden());
      Tensor residualE = mnAtCompute.encoder().sub(fnAtCompute.encoder());
      BlockIO fnAtCache = list.runRange(0, 1, new BlockIO(h0, e0), cacheArgs);
      BlockIO expected = list.runRange(3, 5, new BlockIO(residual.add(fnAtCache.hidden()),
          residualE.add(fnAtCache.encoder())), cacheArgs);

      try (CacheHandle h = CacheDit.enableCache(adapter(model, false), options(DBCacheConfig.builder()
          .fnComputeBlocks(1).bnComputeBlocks(2).maxWarmupSteps(1).residualDiffThreshold(0.05)))) {
        List<Tensor> out = driver.generate(probes(1.0, 1.01));
        assertEquals(List.of(1), stats(h).cachedSteps());
        assertTrue(torch.equal(expected.hidden(), out.get(1)), "Bn must run on Fn output + cached residual");
      }
    }
  }

  // ---- CFG (docs/algorithms.md section 5) ------------------------------------------------------------------------------

  @Test
  void cfg_separateBranchesByParityOrByStepContextAgree() {
    double[] cond = Driver.constantProbes(6, 1.0);
    double[] uncond = {1, 2, 4, 8, 16, 32};  // every uncond diff >= 1: that branch never caches
    CacheStats[] results = new CacheStats[2];
    for (int explicit = 0; explicit < 2; explicit++) {
      try (SyntheticTransformer model = new SyntheticTransformer(ForwardPattern.PATTERN_2, 4, 9);
           Driver driver = new Driver(model).separateCfg(true).explicitSteps(explicit == 1);
           CacheHandle h = CacheDit.enableCache(adapter(model, true), options(DBCacheConfig.builder()
               .fnComputeBlocks(1).maxWarmupSteps(2).residualDiffThreshold(0.1)))) {
        driver.generate(cond, uncond, null);
        results[explicit] = stats(h);
      }
    }
    for (CacheStats s : results) {
      assertEquals(List.of(2, 3, 4, 5), s.cachedSteps());
      assertEquals(List.of(), s.cfgCachedSteps());
      assertEquals(6, s.accumulatedExecutedSteps());
      assertEquals(12, s.accumulatedTransformerExecutedSteps());
      assertEquals(1.0, s.cfgResidualDiffs().get(2).get(0), 1e-6);  // |4-2|/2
    }
    assertEquals(results[0].cachedSteps(), results[1].cachedSteps());
    assertEquals(results[0].cfgResidualDiffs(), results[1].cfgResidualDiffs());
  }

  @Test
  void cfg_sharedDiffLetsUncondFollowCond() {
    try (SyntheticTransformer model = new SyntheticTransformer(ForwardPattern.PATTERN_2, 4, 9);
         Driver driver = new Driver(model).separateCfg(true);
         CacheHandle h = CacheDit.enableCache(adapter(model, true), options(DBCacheConfig.builder()
             .fnComputeBlocks(1).maxWarmupSteps(2).residualDiffThreshold(0.1).cfgDiffComputeSeparate(false)))) {
      driver.generate(Driver.constantProbes(5, 1.0), new double[] {1, 2, 4, 8, 16}, null);
      CacheStats s = stats(h);
      assertEquals(List.of(2, 3, 4), s.cfgCachedSteps(), "uncond reuses the cond diff (0) of each step");
      assertEquals(s.residualDiffs(), s.cfgResidualDiffs());
    }
  }

  @Test
  void cfg_computeFirstSwapsTheParity() {
    try (SyntheticTransformer model = new SyntheticTransformer(ForwardPattern.PATTERN_2, 4, 9);
         Driver driver = new Driver(model).separateCfg(true);
         CacheHandle h = CacheDit.enableCache(adapter(model, true), options(DBCacheConfig.builder()
             .fnComputeBlocks(1).maxWarmupSteps(2).residualDiffThreshold(0.1).cfgComputeFirst(true)
             .cfgDiffComputeSeparate(false)))) {
      // the driver's first call of each step (constant probe) is now the CFG branch
      driver.generate(Driver.constantProbes(5, 1.0), new double[] {1, 2, 4, 8, 16}, null);
      CacheStats s = stats(h);
      assertEquals(List.of(2, 3, 4), s.cfgCachedSteps());
      assertEquals(List.of(), s.cachedSteps());
    }
  }

  @Test
  void cfg_computeFirstWithSeparateDiffsIsRejected() {
    ConfigException e = assertThrows(ConfigException.class, () -> DBCacheConfig.builder().enableSeparateCfg(true)
        .cfgComputeFirst(true).build());
    assertTrue(e.getMessage().contains("cfg_compute_first"), e.getMessage());
    try (SyntheticTransformer model = new SyntheticTransformer(ForwardPattern.PATTERN_2, 4, 9)) {
      e = assertThrows(ConfigException.class, () -> CacheDit.enableCache(adapter(model, true),
          options(DBCacheConfig.builder().cfgComputeFirst(true))));
      assertTrue(e.getMessage().contains("transformer_blocks"), e.getMessage());
      // nothing stays installed after a failed enable
      assertFalse(model.blockLists().get(0).runner() instanceof io.cachedit.cache.engine.CachedBlockRunner);
    }
  }

  // ---- calibrators (docs/algorithms.md section 6) ------------------------------------------------------------------------

  /**
   * The prediction a calibrator makes for the middle residual {@code C + t^2} at {@code step}, read as
   * the cached output minus the uncached output with the t^2 term removed (the constant C cancels).
   */
  private static double predictedOffset(SyntheticTransformer model, CalibratorConfig calibrator, int step,
      int[] mask) {
    return predictedOffset(model, calibrator, step, mask, t -> (double) t * t);
  }

  /** As above for a middle residual {@code C + mid(t)}. */
  private static double predictedOffset(SyntheticTransformer model, CalibratorConfig calibrator, int step,
      int[] mask, java.util.function.IntToDoubleFunction mid) {
    try (Driver driver = new Driver(model);
         CacheHandle h = CacheDit.enableCache(adapter(model, false), new CacheOptions(DBCacheConfig.builder()
             .fnComputeBlocks(1).maxWarmupSteps(0).residualDiffThreshold(0.5)
             .stepsComputationMask(StepMask.of(mask)).stepsComputationPolicy(StepsPolicy.STATIC).build(),
             calibrator, List.of()))) {
      List<Tensor> cached = driver.generate(Driver.constantProbes(mask.length, 1.0), Driver.constantProbes(mask.length, 1.0),
          t -> SyntheticTransformer.constant(mid.applyAsDouble(t)));
      h.close();
      // the model is 2 blocks (probe, mid): output = Fn_out + predicted residual; subtract the uncached
      // output with mid = 0 to read the prediction of C + t^2 minus C
      List<Tensor> zeroMid = driver.generate(Driver.constantProbes(mask.length, 1.0),
          Driver.constantProbes(mask.length, 1.0), t -> SyntheticTransformer.constant(0.0));
      return cached.get(step).sub(zeroMid.get(step)).mean().item_double();
    }
  }

  @Test
  void taylorSeer_specExample_throughTheEngine() {
    int[] mask = {1, 1, 1, 1, 0, 0, 1, 0, 0, 0};
    try (SyntheticTransformer model = new SyntheticTransformer(4, 1,
        new SyntheticTransformer.Spec("blocks", ForwardPattern.PATTERN_3, 2))) {
      TaylorSeerCalibratorConfig order1 = TaylorSeerCalibratorConfig.ofOrder(1);
      assertEquals(14.0, predictedOffset(model, order1, 4, mask), 1e-4);
      assertEquals(19.0, predictedOffset(model, order1, 5, mask), 1e-4);
      assertEquals(45.0, predictedOffset(model, order1, 7, mask), 1e-4);
      assertEquals(54.0, predictedOffset(model, order1, 8, mask), 1e-4);
      assertEquals(63.0, predictedOffset(model, order1, 9, mask), 1e-4);
      assertEquals(45.0 + 2.0 / 3.0, predictedOffset(model, TaylorSeerCalibratorConfig.ofOrder(2), 7, mask), 1e-3);
      // hidden-states mode extrapolates the middle blocks' output itself: the same prediction here
      assertEquals(14.0, predictedOffset(model, new TaylorSeerCalibratorConfig(true, true,
          CalibratorCacheType.HIDDEN_STATES, 1), 4, mask), 1e-4);
      // without a calibrator the cached step reuses the last computed residual (t = 3: 9)
      assertEquals(9.0, predictedOffset(model, null, 4, mask), 1e-4);
    }
  }

  @Test
  void dmd_forecastsAnExponentialExactlyAndFallsBackAsTheReference() {
    try (SyntheticTransformer model = new SyntheticTransformer(4, 1,
        new SyntheticTransformer.Spec("blocks", ForwardPattern.PATTERN_3, 2))) {
      // six evenly spaced computed steps of C + 10 * 0.8^t: two modes (1 and 0.8), which DMD identifies
      int[] mask = {1, 1, 1, 1, 1, 1, 0, 0, 0};
      java.util.function.IntToDoubleFunction decay = t -> 10 * Math.pow(0.8, t);
      DMDCalibratorConfig dmd = DMDCalibratorConfig.defaults();
      for (int step = 6; step <= 8; step++) {
        assertEquals(decay.applyAsDouble(step), predictedOffset(model, dmd, step, mask, decay), 1e-3, "step " + step);
      }
      // a polynomial extrapolation misses it: TaylorSeer order 1 at step 8
      double taylor = predictedOffset(model, TaylorSeerCalibratorConfig.ofOrder(1), 8, mask, decay);
      assertTrue(Math.abs(taylor - decay.applyAsDouble(8)) > 0.2, "TaylorSeer " + taylor);
      // the randomised SVD gives the same forecast here
      assertEquals(decay.applyAsDouble(7), predictedOffset(model, new DMDCalibratorConfig(true, true,
          CalibratorCacheType.RESIDUAL, 6, 0, 1e-8, DMDCalibratorConfig.SvdPrecision.LOW), 7, mask, decay), 1e-3);
      // under 4 evenly spaced values DMD extrapolates linearly as the reference does: computed at 0, 1, 2, 4
      // (t^2: 0, 1, 4, 16), the difference is taken over the update before the previous one, (16 - 1) / 2,
      // so step 5 gets 16 + 7.5 where TaylorSeer's ladder gives 16 + (16 - 4) / 2
      int[] uneven = {1, 1, 1, 0, 1, 0};
      assertEquals(23.5, predictedOffset(model, dmd, 5, uneven), 1e-4);
      assertEquals(22.0, predictedOffset(model, TaylorSeerCalibratorConfig.ofOrder(1), 5, uneven), 1e-4);
      // three computed values: no difference yet, the last one is reused
      assertEquals(4.0, predictedOffset(model, dmd, 3, new int[] {1, 1, 1, 0, 0}), 1e-4);
    }
  }

  @Test
  void foca_forecastsAndRollsForward() {
    int[] mask = {1, 1, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0};
    try (SyntheticTransformer model = new SyntheticTransformer(4, 1,
        new SyntheticTransformer.Spec("blocks", ForwardPattern.PATTERN_3, 2))) {
      FoCaCalibratorConfig foca = FoCaCalibratorConfig.defaults();
      // last computed 9 (t=3), previous 4: slope 5 on both the full and the rolling pair
      assertEquals(14.0, predictedOffset(model, foca, 4, mask), 1e-4);  // 9 + (1/2)(5 + 5)
      assertEquals(19.0, predictedOffset(model, foca, 5, mask), 1e-4);  // 9 + (2/2)(5 + 5), rolled
      // computed at 6 (36, previous full 9: g_full = 27; rolling pair (19 -> 36): g_cur = 17)
      assertEquals(36 + 0.5 * (27 + 17), predictedOffset(model, foca, 7, mask), 1e-3);
      // beyond 3 steps the forecast blends towards the last computed value
      double f7 = 36 + 0.5 * (27 + 17);
      double f8 = 36 + 1.0 * (27 + (f7 - 36));
      double f9 = 36 + 1.5 * (27 + (f8 - f7));
      double w = 3.0 / 4;
      double f10 = w * (36 + 1.5 * (27 + (f9 - f8))) + (1 - w) * 36;
      assertEquals(f10, predictedOffset(model, foca, 10, mask), 1e-2);
    }
  }

  // ---- step masks in the engine (docs/algorithms.md section 7) -----------------------------------------------------------

  @Test
  void stepMask_staticCachesZeroStepsDynamicGatesThem() {
    int[] mask = {1, 1, 0, 0, 1, 0};
    double[] p = {1, 1, 1.5, 1.5, 1, 1.0};
    assertEquals(List.of(2, 3, 5), cachedSteps(DBCacheConfig.builder().maxWarmupSteps(8)
        .stepsComputationMask(StepMask.of(mask)).stepsComputationPolicy(StepsPolicy.STATIC), p));
    // dynamic: step 2's diff 0.5 exceeds the threshold; warm-up is cut to the mask's leading 1s
    assertEquals(List.of(3, 5), cachedSteps(DBCacheConfig.builder().maxWarmupSteps(8)
        .stepsComputationMask(StepMask.of(mask)), p));
    // a static 0 at step 0 has nothing cached yet: it computes instead of failing
    assertEquals(List.of(1, 2), cachedSteps(DBCacheConfig.builder().maxWarmupSteps(8)
        .stepsComputationMask(StepMask.of(0, 0, 0, 1)).stepsComputationPolicy(StepsPolicy.STATIC),
        Driver.constantProbes(4, 1.0)));
  }

  @Test
  void stepMask_policyResolvesPerGenerationStepCount() {
    try (SyntheticTransformer model = new SyntheticTransformer(ForwardPattern.PATTERN_3, 3, 3);
         Driver driver = new Driver(model).explicitSteps(true);
         CacheHandle h = CacheDit.enableCache(adapter(model, false), options(DBCacheConfig.builder()
             .fnComputeBlocks(1).stepsComputationMask(StepMask.policy("fast"))
             .stepsComputationPolicy(StepsPolicy.STATIC)))) {
      driver.generate(Driver.constantProbes(28, 1.0));
      int[] fast = StepMask.policyMask("fast", 28);
      List<Integer> zeros = new java.util.ArrayList<>();
      for (int i = 0; i < fast.length; i++) {
        if (fast[i] == 0) {
          zeros.add(i);
        }
      }
      assertEquals(zeros, stats(h).cachedSteps());
      driver.generate(Driver.constantProbes(9, 1.0));
      assertEquals(3, stats(h).cachedSteps().size(), "fast/9 = 111101001");
    }
  }

  // ---- refresh (docs/algorithms.md section 8.2) --------------------------------------------------------------------------

  @Test
  void transformerOnly_numInferenceStepsRefreshesWithoutDrift() {
    try (SyntheticTransformer model = new SyntheticTransformer(ForwardPattern.PATTERN_3, 3, 3);
         Driver driver = new Driver(model).separateCfg(true);
         CacheHandle h = CacheDit.enableCache(adapter(model, true), options(DBCacheConfig.builder()
             .fnComputeBlocks(1).maxWarmupSteps(2).residualDiffThreshold(0.1).numInferenceSteps(4)))) {
      double[] p = {1, 1, 1.01, 1.02};
      List<Tensor> first = driver.generate(p);
      CacheStats s1 = stats(h);
      for (int g = 0; g < 3; g++) {
        assertAllEqual(first, driver.generate(p));
        CacheStats s = stats(h);
        assertEquals(s1.cachedSteps(), s.cachedSteps());
        assertEquals(s1.residualDiffs(), s.residualDiffs());
      }
      assertEquals(List.of(2, 3), s1.cachedSteps());
    }
  }

  @Test
  void pipelineMode_everyGenerationStartsFresh() {
    try (SyntheticTransformer model = new SyntheticTransformer(ForwardPattern.PATTERN_0, 5, 8);
         Driver driver = new Driver(model).explicitSteps(true).feedback(true);
         CacheHandle h = CacheDit.enableCache(adapter(model, false), options(DBCacheConfig.builder()
             .fnComputeBlocks(1).maxWarmupSteps(2).residualDiffThreshold(0.1)))) {
      double[] p = {1, 1, 1.01, 1.02, 1.3, 1.31};
      List<Tensor> first = driver.generate(p);
      assertAllEqual(first, driver.generate(p));
      assertEquals(6, stats(h).accumulatedExecutedSteps(), "a new generation is a new context");
    }
  }

  @Test
  void forceRefresh_onceAndRepeat_keepAccumulatedCounters() {
    for (RefreshPolicy policy : RefreshPolicy.values()) {
      try (SyntheticTransformer model = new SyntheticTransformer(ForwardPattern.PATTERN_3, 3, 3);
           Driver driver = new Driver(model);
           CacheHandle h = CacheDit.enableCache(adapter(model, false), options(DBCacheConfig.builder()
               .fnComputeBlocks(1).maxWarmupSteps(1).residualDiffThreshold(0.1).forceRefreshStepHint(4)
               .forceRefreshStepPolicy(policy)))) {
        driver.generate(Driver.constantProbes(12, 1.0));
        CacheStats s = stats(h);
        // once: refresh at call 4 -> steps 0-3 (3 cached), then 8 steps with step 0 computing (7 cached)
        // repeat: refresh at calls 4 and 8 -> 3 + 3 + 3 cached
        long expected = policy == RefreshPolicy.ONCE ? 10 : 9;
        assertEquals(expected, s.accumulatedCachedSteps(), policy.name());
        assertEquals(12, s.accumulatedTransformerExecutedSteps());
        assertEquals(policy == RefreshPolicy.ONCE ? 7 : 3, s.cachedSteps().size(), "lists hold the last segment");
      }
    }
  }

  @Test
  void refreshContext_api() {
    try (SyntheticTransformer model = new SyntheticTransformer(ForwardPattern.PATTERN_3, 3, 3);
         Driver driver = new Driver(model);
         CacheHandle h = CacheDit.enableCache(adapter(model, false), options(DBCacheConfig.builder()
             .fnComputeBlocks(1).maxWarmupSteps(1).residualDiffThreshold(0.1)))) {
      driver.generate(Driver.constantProbes(5, 1.0));
      assertEquals(List.of(1, 2, 3, 4), stats(h).cachedSteps());
      CacheDit.refreshContext(model, 3);
      assertEquals(List.of(), stats(h).cachedSteps());
      assertEquals(3, stats(h).cacheOptions().get("num_inference_steps"));
      driver.generate(Driver.constantProbes(3, 1.0));
      driver.generate(Driver.constantProbes(3, 1.0));
      assertEquals(List.of(1, 2), stats(h).cachedSteps());
      CacheDit.refreshContext(model, DBCacheConfig.builder().fnComputeBlocks(2).maxWarmupSteps(0).build());
      assertEquals(2, h.configs().get(0).fnComputeBlocks());
      assertThrows(ConfigException.class, () -> CacheDit.refreshContext(model,
          DBCacheConfig.builder().fnComputeBlocks(3).bnComputeBlocks(1).build(), null));
    }
  }

  // ---- reduced-precision buffers (beyond the reference) ------------------------------------------

  @Test
  void reducedPrecisionBuffers_saveBytesAtASmallOutputCost() {
    double[] p = {1, 1, 1.01, 1.02, 1.03, 1.04};
    long[] bytes = new long[3];
    double[] maxDiff = new double[3];
    List<Tensor> full = null;
    io.cachedit.kernels.NativeScope keepAlive = io.cachedit.kernels.NativeScope.owner("full-precision outputs");
    BufferPrecision[] precisions = {BufferPrecision.FULL, BufferPrecision.BF16, BufferPrecision.FP8};
    for (int i = 0; i < precisions.length; i++) {
      try (SyntheticTransformer model = new SyntheticTransformer(ForwardPattern.PATTERN_1, 5, 13);
           Driver driver = new Driver(model);
           CacheHandle h = CacheDit.enableCache(adapter(model, false), options(DBCacheConfig.builder()
               .fnComputeBlocks(1).maxWarmupSteps(2).residualDiffThreshold(0.1)
               .cacheBufferPrecision(precisions[i])))) {
        List<Tensor> out = driver.generate(p);
        CacheStats s = stats(h);
        assertEquals(List.of(2, 3, 4, 5), s.cachedSteps());
        bytes[i] = s.residualBytes();
        assertEquals(s.residualFullBytes(), bytes[0] == 0 ? s.residualBytes() : bytes[0] * 1L);
        if (full == null) {
          full = out.stream().map(keepAlive::keep).toList();
        }
        double m = 0;
        for (int c = 0; c < out.size(); c++) {
          m = Math.max(m, out.get(c).sub(full.get(c)).abs().max().item_double());
        }
        maxDiff[i] = m;
      }
    }
    assertEquals(bytes[0] / 2, bytes[1], "bf16 holds half of fp32");
    assertTrue(bytes[2] < bytes[0] * 0.35, "fp8 rows + scales hold about a quarter: " + bytes[2] + " vs " + bytes[0]);
    assertEquals(0.0, maxDiff[0]);
    assertTrue(maxDiff[1] > 0 && maxDiff[1] < 0.05, "bf16 output difference " + maxDiff[1]);
    assertTrue(maxDiff[2] > maxDiff[1] && maxDiff[2] < 0.3, "fp8 output difference " + maxDiff[2]);
    keepAlive.close();
  }

  @Test
  void longRun_nativeMemoryDoesNotGrow() {
    try (SyntheticTransformer model = new SyntheticTransformer(ForwardPattern.PATTERN_1, 6, 3);
         Driver driver = new Driver(model).explicitSteps(true).feedback(true);
         CacheHandle h = CacheDit.enableCache(adapter(model, false), new CacheOptions(DBCacheConfig.builder()
             .fnComputeBlocks(1).maxWarmupSteps(1).residualDiffThreshold(0.05).build(),
             TaylorSeerCalibratorConfig.ofOrder(2), List.of()))) {
      double[] p = {1, 1, 1.01, 1.02, 1.2, 1.21, 1.22, 1.5};
      for (int i = 0; i < 20; i++) {
        driver.generate(p);
      }
      long before = org.bytedeco.javacpp.Pointer.physicalBytes();
      for (int i = 0; i < 300; i++) {
        try (PointerScope s = new PointerScope()) {
          driver.generate(p);
        }
      }
      long grown = org.bytedeco.javacpp.Pointer.physicalBytes() - before;
      // the driver keeps each output (8 KB x 2400); anything beyond that is a leak
      assertTrue(grown < 64L << 20, "RSS grew by " + (grown >> 20) + " MB");
    }
  }
}
