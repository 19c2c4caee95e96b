package io.cachedit.cache;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Config defaults, validation messages, strify tags, overlays and file loading (SPEC 3.1, 8.5, 8.9). */
class CacheConfigTest {
  @Test
  void defaults_areTheReferences() {
    DBCacheConfig c = DBCacheConfig.defaults();
    assertEquals(8, c.fnComputeBlocks());
    assertEquals(0, c.bnComputeBlocks());
    assertEquals(0.08, c.residualDiffThreshold());
    assertEquals(8, c.maxWarmupSteps());
    assertEquals(1, c.warmupInterval());
    assertTrue(c.maxCachedSteps().isEmpty() && c.maxContinuousCachedSteps().isEmpty());
    assertTrue(c.enableSeparateCfg().isEmpty());
    assertEquals(StepsPolicy.DYNAMIC, c.stepsComputationPolicy());
    assertEquals("DBCache_F8B0_W8I1M0MC0_R0.08", c.strify());
    assertEquals(1.25, DBPruneConfig.builder().build().dynamicPruneThresholdRelaxRatio());
  }

  @Test
  void strify_matchesTheReferenceTags() {
    assertEquals("DBCache_F1B0_W8I1M0MC3_R0.12_CFG0", DBCacheConfig.builder().fnComputeBlocks(1)
        .residualDiffThreshold(0.12).maxContinuousCachedSteps(3).enableSeparateCfg(false).build().strify());
    assertEquals("DBCache_F8B0_W8I1M0MC0_R0.08_SCM111101001_dynamic_N9_FR4_once", DBCacheConfig.builder()
        .stepsComputationMask(StepMask.policy("fast")).numInferenceSteps(9).forceRefreshStepHint(4).build().strify());
    assertEquals("DBPrune_F8B8_W8I1M0MC2_R0.12", DBPruneConfig.builder().bnComputeBlocks(8)
        .maxContinuousCachedSteps(2).residualDiffThreshold(0.12).build().strify());
    assertEquals("1e-05", BasicCacheConfig.pythonFloat(1e-5));
    assertEquals("1.0", BasicCacheConfig.pythonFloat(1.0));
    assertEquals("0.0001", BasicCacheConfig.pythonFloat(1e-4));
    assertEquals("T1O2", TaylorSeerCalibratorConfig.ofOrder(2).strify());
    assertEquals("FoCa", FoCaCalibratorConfig.defaults().strify());
  }

  @Test
  void validation_namesTheField() {
    ConfigException e = assertThrows(ConfigException.class, () -> DBCacheConfig.builder().maxWarmupSteps(-1));
    assertEquals("max_warmup_steps", e.field());
    assertTrue(e.getMessage().contains("-1"), e.getMessage());
    e = assertThrows(ConfigException.class, () -> DBCacheConfig.builder().fnComputeBlocks(0));
    assertEquals("Fn_compute_blocks", e.field());
    assertThrows(ConfigException.class, () -> DBCacheConfig.builder().residualDiffThreshold(Double.NaN));
    assertThrows(ConfigException.class, () -> DBCacheConfig.builder().maxCachedSteps(-2));
    assertThrows(ConfigException.class, () -> DBCacheConfig.builder().warmupInterval(0));
    assertThrows(ConfigException.class, () -> TaylorSeerCalibratorConfig.ofOrder(5));
    e = assertThrows(ConfigException.class, () -> DBCacheConfig.builder().stepsComputationMask(StepMask.of(1, 1, 0))
        .numInferenceSteps(4).build());
    assertTrue(e.getMessage().contains("3 steps") && e.getMessage().contains("num_inference_steps = 4"), e.getMessage());
    e = assertThrows(ConfigException.class, () -> DBCacheConfig.builder().fnComputeBlocks(6).bnComputeBlocks(3)
        .build().validateFor("single_transformer_blocks", 8));
    assertTrue(e.getMessage().contains("(6)") && e.getMessage().contains("(3)") && e.getMessage().contains("8 blocks")
        && e.getMessage().contains("single_transformer_blocks"), e.getMessage());
  }

  @Test
  void overlay_replacesOnlyTheFieldsItSets() {
    DBCacheConfig base = DBCacheConfig.builder().fnComputeBlocks(4).residualDiffThreshold(0.1).build();
    DBCacheConfig c = base.overlay(DBCacheConfig.reset().maxWarmupSteps(2).maxCachedSteps(10).build());
    assertEquals(4, c.fnComputeBlocks());
    assertEquals(0.1, c.residualDiffThreshold());
    assertEquals(2, c.maxWarmupSteps());
    assertEquals(10, c.maxCachedSteps().getAsInt());
    ParamsModifier m = ParamsModifier.of(DBCacheConfig.reset().residualDiffThreshold(0.16),
        TaylorSeerCalibratorConfig.ofOrder(2));
    assertEquals(0.16, m.applyTo(base).residualDiffThreshold());
    assertEquals(TaylorSeerCalibratorConfig.ofOrder(2), m.applyTo((CalibratorConfig) null));
    assertThrows(ConfigException.class, () -> base.overlay(DBCacheConfig.reset().enableDynamicPruneThreshold(true)
        .build()));
  }

  @Test
  void yaml_sectionsLegacyKeysAndModifiers(@TempDir Path dir) throws Exception {
    Path file = dir.resolve("cache.yaml");
    Files.writeString(file, """
        cache_config:
          Fn_compute_blocks: 1
          Bn_compute_blocks: 0
          residual_diff_threshold: 0.12
          max_warmup_steps: 4
          max_continuous_cached_steps: 3
          steps_computation_mask: fast
          num_inference_steps: 28
          steps_computation_policy: static
          enable_taylorseer: true
          taylorseer_order: 2
        params_modifiers:
          - cache_config: {residual_diff_threshold: 0.16}
          - calibrator_config: {calibrator_type: foca}
        """);
    CacheOptions o = CacheOptions.load(file);
    DBCacheConfig c = assertInstanceOf(DBCacheConfig.class, o.cacheConfig());
    assertEquals(1, c.fnComputeBlocks());
    assertEquals(0.12, c.residualDiffThreshold());
    assertEquals(StepsPolicy.STATIC, c.stepsComputationPolicy());
    assertEquals("fast", c.stepsComputationMask().policyName());
    assertEquals(new TaylorSeerCalibratorConfig(true, false, CalibratorCacheType.RESIDUAL, 2), o.calibratorConfig());
    assertEquals(2, o.paramsModifiers().size());
    assertEquals(0.16, o.paramsModifiers().get(0).applyTo(c).residualDiffThreshold());
    assertInstanceOf(FoCaCalibratorConfig.class, o.paramsModifiers().get(1).calibratorConfig());
  }

  @Test
  void yamlAndJson_flatFilesPruneAndCalibratorSection(@TempDir Path dir) throws Exception {
    Path flat = dir.resolve("flat.yml");
    Files.writeString(flat, "cache_type: DBPrune\nFn_compute_blocks: 8\nBn_compute_blocks: 8\n"
        + "enable_dynamic_prune_threshold: true\nnon_prune_block_ids: [8, 9, 10, 11, 12]\n");
    DBPruneConfig p = assertInstanceOf(DBPruneConfig.class, CacheOptions.load(flat).cacheConfig());
    assertEquals(List.of(8, 9, 10, 11, 12), p.nonPruneBlockIds());
    assertTrue(p.enableDynamicPruneThreshold());

    Path json = dir.resolve("c.json");
    Files.writeString(json, "{\"cache_config\": {\"max_warmup_steps\": 2, \"steps_computation_mask\": [1,1,0,1]},"
        + " \"calibrator_config\": {\"calibrator_type\": \"taylorseer\", \"taylorseer_order\": 3,"
        + " \"calibrator_cache_type\": \"hidden_states\"}}");
    CacheOptions o = CacheOptions.load(json);
    assertEquals("1101", o.cacheConfig().stepsComputationMask().toString());
    assertEquals(new TaylorSeerCalibratorConfig(true, true, CalibratorCacheType.HIDDEN_STATES, 3),
        o.calibratorConfig());
    assertNull(CacheOptions.parse("max_warmup_steps: 3", false).calibratorConfig());
  }

  @Test
  void files_badInputNamesFileAndKey(@TempDir Path dir) throws Exception {
    Path bad = dir.resolve("bad.yaml");
    Files.writeString(bad, "cache_config:\n  residual_diff_treshold: 0.1\n");
    ConfigException e = assertThrows(ConfigException.class, () -> CacheOptions.load(bad));
    assertTrue(e.getMessage().contains("bad.yaml") && e.getMessage().contains("residual_diff_treshold")
        && e.getMessage().contains("residual_diff_threshold"), e.getMessage());
    Files.writeString(bad, "cache_config:\n  max_warmup_steps: 2.5\n");
    e = assertThrows(ConfigException.class, () -> CacheOptions.load(bad));
    assertTrue(e.getMessage().contains("max_warmup_steps") && e.getMessage().contains("integer"), e.getMessage());
    Files.writeString(bad, "cache_config: {max_warmup_steps: [1\n");
    e = assertThrows(ConfigException.class, () -> CacheOptions.load(bad));
    assertTrue(e.getMessage().contains("invalid YAML"), e.getMessage());
    Files.writeString(bad, "cache_config: {}\nparallelism_config: {ulysses_size: 2}\n");
    e = assertThrows(ConfigException.class, () -> CacheOptions.load(bad));
    assertTrue(e.getMessage().contains("parallelism_config"), e.getMessage());
    Files.writeString(bad, "enable_dynamic_prune_threshold: true\n");
    e = assertThrows(ConfigException.class, () -> CacheOptions.load(bad));
    assertTrue(e.getMessage().contains("DBPrune"), e.getMessage());
    e = assertThrows(ConfigException.class, () -> CacheOptions.load(dir.resolve("missing.yaml")));
    assertTrue(e.getMessage().contains("missing.yaml"), e.getMessage());
  }
}
