package io.cachedit.cache;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.cachedit.CacheDit;
import io.cachedit.CacheHandle;
import io.cachedit.adapter.BlockAdapter;
import io.cachedit.error.ConfigException;
import io.cachedit.models.common.BlockList;
import io.cachedit.models.common.ForwardPattern;
import io.cachedit.models.common.StepContext;
import io.cachedit.testing.Driver;
import io.cachedit.testing.SyntheticTransformer;
import java.util.ArrayList;
import java.util.List;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The engine's install path through the public API: {@link EngineSettings} (diff reducer, kernel
 * threads, default buffer precision, decision listener) and the decision trace.
 */
class EngineSeamsTest {
  private PointerScope scope;

  @BeforeEach
  void open() {
    scope = new PointerScope();
  }

  @AfterEach
  void close() {
    scope.close();
  }

  /** Fn residual = probe: diffs 0.01, 0.02, 0.02 (vs step 1) are cached, 0.5 computes. */
  static final double[] PROBES = {1, 1, 1.01, 1.02, 1.02, 1.5};

  static BlockAdapter adapter(SyntheticTransformer model) {
    BlockList<?> list = model.blockLists().get(0);
    return BlockAdapter.builder().transformer(model).blocks(model, list.name(), list.pattern()).build();
  }

  static CacheOptions dbcache() {
    return CacheOptions.of(DBCacheConfig.builder().fnComputeBlocks(1).maxWarmupSteps(2).residualDiffThreshold(0.1)
        .build());
  }

  /** Runs one generation of {@link #PROBES} with {@code settings}; returns the outputs and the stats. */
  static Object[] run(EngineSettings settings, CacheOptions options) {
    try (SyntheticTransformer model = new SyntheticTransformer(ForwardPattern.PATTERN_1, 5, 21);
         Driver driver = new Driver(model).explicitSteps(true);
         CacheHandle h = CacheDit.enableCache(adapter(model), options, settings)) {
      List<Tensor> out = driver.generate(PROBES);
      List<Tensor> copies = new ArrayList<>();
      for (Tensor t : out) {
        copies.add(t.clone());
      }
      return new Object[] {copies, h.stats().get(0)};
    }
  }

  @Test
  void reducer_getsTheDeviceSumsOncePerDiffAndItsResultDecides() {
    List<String> seen = new ArrayList<>();
    // a group of two identical ranks averaging: the same decisions as alone
    DiffReducer average = sums -> {
      seen.add(sums.scalar_type().intern() + " " + sums.numel() + " " + sums.device().type().intern());
      sums.mul_(new Scalar(2.0)).div_(new Scalar(2.0));
    };
    CacheStats local = (CacheStats) run(EngineSettings.defaults(), dbcache())[1];
    CacheStats reduced = (CacheStats) run(EngineSettings.defaults().withReducer(average), dbcache())[1];
    assertEquals(List.of(2, 3, 4), local.cachedSteps());
    assertEquals(local.cachedSteps(), reduced.cachedSteps());
    assertEquals(local.residualDiffs(), reduced.residualDiffs());
    // one reduction per computed diff (steps 2..5), each of the float64 [sum|prev-cur|, sum|prev|] pair on the CPU
    assertEquals(4, seen.size(), seen.toString());
    assertEquals("Double 2 CPU", seen.get(0));
    // another rank whose probe moved a lot: its numerator outvotes ours, so no step is cached anywhere
    DiffReducer otherRankMoved = sums -> sums.select(0, 0).add_(new Scalar(1e6));
    CacheStats outvoted = (CacheStats) run(EngineSettings.defaults().withReducer(otherRankMoved), dbcache())[1];
    assertEquals(List.of(), outvoted.cachedSteps());
    assertTrue(outvoted.residualDiffs().get(2).get(0) > 1.0);
  }

  @Test
  @SuppressWarnings("unchecked")
  void kernelThreads_doNotChangeTheBits() {
    Object[] one = run(EngineSettings.defaults().withKernelThreads(1), dbcache());
    Object[] two = run(EngineSettings.defaults().withKernelThreads(2), dbcache());
    List<Tensor> a = (List<Tensor>) one[0];
    List<Tensor> b = (List<Tensor>) two[0];
    for (int i = 0; i < a.size(); i++) {
      assertTrue(torch.equal(a.get(i), b.get(i)), "step " + i);
    }
    assertThrows(ConfigException.class, () -> EngineSettings.defaults().withKernelThreads(-1));
    assertEquals(EngineSettings.COMPUTE_POOL, EngineSettings.defaults().kernelThreads());
  }

  @Test
  void bufferPrecision_isTheEnginesDefaultUnlessTheConfigSaysOtherwise() {
    CacheStats full = (CacheStats) run(EngineSettings.defaults(), dbcache())[1];
    CacheStats bf16 = (CacheStats) run(EngineSettings.defaults().withBufferPrecision(BufferPrecision.BF16),
        dbcache())[1];
    CacheStats explicitFull = (CacheStats) run(EngineSettings.defaults().withBufferPrecision(BufferPrecision.BF16),
        CacheOptions.of(DBCacheConfig.builder().fnComputeBlocks(1).maxWarmupSteps(2).residualDiffThreshold(0.1)
            .cacheBufferPrecision(BufferPrecision.FULL).build()))[1];
    assertEquals(full.residualBytes() / 2, bf16.residualBytes());
    assertEquals(full.residualBytes(), explicitFull.residualBytes());
    assertEquals(full.cachedSteps(), bf16.cachedSteps());
  }

  @Test
  void decisionTrace_dbcache_everyCallWithItsReason_andTheListenerSeesTheSame() {
    List<CacheDecision> live = new ArrayList<>();
    CacheStats s = (CacheStats) run(EngineSettings.defaults().withListener(live::add), dbcache())[1];
    List<CacheDecision> d = s.decisions();
    assertEquals(live, d);
    assertEquals(PROBES.length, d.size());
    assertEquals(List.of(DecisionReason.WARMUP, DecisionReason.WARMUP, DecisionReason.DIFF_BELOW_THRESHOLD,
        DecisionReason.DIFF_BELOW_THRESHOLD, DecisionReason.DIFF_BELOW_THRESHOLD,
        DecisionReason.DIFF_AT_OR_ABOVE_THRESHOLD), d.stream().map(CacheDecision::reason).toList());
    CacheDecision c2 = d.get(2);
    assertEquals(2, c2.step());
    assertEquals(StepContext.Branch.SINGLE, c2.branch());
    assertEquals(-1, c2.block());
    assertTrue(c2.cached());
    assertEquals(0.01, c2.diff(), 1e-6);
    assertEquals(0.1, c2.threshold());
    assertEquals(0.5, d.get(5).diff(), 1e-6);
    assertFalse(d.get(5).cached());
    assertTrue(Double.isNaN(d.get(0).diff()), "no diff on a warm-up step");
    assertEquals("step 2 SINGLE: cached (diff 0.01 < 0.1)", c2.toString());
    String md = s.markdown(true);
    assertTrue(md.contains("Decisions:") && md.contains("step 5 SINGLE: computed (diff 0.5 >= 0.1)")
        && md.contains("step 0 SINGLE: computed (warm-up step)"), md);
  }

  @Test
  void decisionTrace_dbprune_everyBlock_gatesAndLimits() {
    CacheOptions prune = CacheOptions.of(DBPruneConfig.builder().fnComputeBlocks(1).maxWarmupSteps(1)
        .residualDiffThreshold(0.1).maxCachedSteps(1).build());
    CacheStats s = (CacheStats) run(EngineSettings.defaults(), prune)[1];
    List<CacheDecision> d = s.decisions();
    assertEquals(PROBES.length * 5, d.size(), "one decision per block per call");
    for (CacheDecision x : d) {
      if (x.block() == 0) {
        assertEquals(DecisionReason.NOT_PRUNABLE, x.reason(), x.toString());
      }
    }
    assertEquals(DecisionReason.WARMUP, d.get(1).reason());
    assertEquals(List.of(1), s.cachedSteps());
    // after the one allowed cached step, later steps are stopped by max_cached_steps
    assertTrue(d.stream().anyMatch(x -> x.reason() == DecisionReason.MAX_CACHED_STEPS), d.toString());
  }

  @Test
  void decisionTrace_recordsBypassCallsWithoutTouchingTheCache() {
    try (SyntheticTransformer model = new SyntheticTransformer(ForwardPattern.PATTERN_3, 3, 4);
         CacheHandle h = CacheDit.enableCache(adapter(model), dbcache())) {
      Tensor x = SyntheticTransformer.hiddenInput(1);
      SyntheticTransformer.Args args = new SyntheticTransformer.Args(SyntheticTransformer.constant(1.0), null);
      model.forward(x, null, args, new StepContext(3, 0, 2, StepContext.Branch.SINGLE));
      model.forward(x, null, args, new StepContext(3, 0, 2, StepContext.Branch.BYPASS));
      List<CacheDecision> d = h.stats().get(0).decisions();
      assertEquals(List.of(DecisionReason.WARMUP, DecisionReason.BYPASS), d.stream().map(CacheDecision::reason).toList());
      assertEquals(1, h.stats().get(0).accumulatedTransformerExecutedSteps(), "a bypass call is not counted");
    }
  }

  @Test
  void refreshToAnotherCacheType_switchesThePolicy() {
    try (SyntheticTransformer model = new SyntheticTransformer(ForwardPattern.PATTERN_3, 4, 8);
         Driver driver = new Driver(model).explicitSteps(true);
         CacheHandle h = CacheDit.enableCache(adapter(model), dbcache())) {
      driver.generate(PROBES);
      assertEquals(PROBES.length, h.stats().get(0).decisions().size());
      CacheDit.refreshContext(model, DBPruneConfig.builder().fnComputeBlocks(1).maxWarmupSteps(1)
          .residualDiffThreshold(0.1).build());
      driver.generate(PROBES);
      CacheStats s = h.stats().get(0);
      assertTrue(s.cacheTag().startsWith("DBPrune"), s.cacheTag());
      assertEquals(PROBES.length * 4, s.decisions().size(), "per-block decisions after the switch");
      assertTrue(s.prunedRatio() > 0);
    }
  }

  @Test
  void cpuSumsTensorMatchesTheHostSums() {
    io.cachedit.kernels.Kernels k = io.cachedit.kernels.Kernels.create();
    torch.manual_seed(3);
    Tensor prev = torch.randn(3, 77);
    Tensor after = torch.randn(3, 77);
    Tensor before = torch.randn(3, 77);
    Tensor sums = k.relL1ResidualSumsTensor(prev, after, before);
    assertEquals(ScalarType.Double, sums.scalar_type().intern());
    io.cachedit.kernels.RelL1Sums host = k.relL1ResidualSums(prev, after, before);
    assertEquals(host, io.cachedit.kernels.RelL1Sums.read(sums, prev.numel()));
  }
}
