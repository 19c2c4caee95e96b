package io.cachedit.cache;

import io.cachedit.error.ConfigException;
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

/** Config defaults, validation messages, strify tags, overlays and file loading (docs/algorithms.md 3.1, 8.3, 8.5). */
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
    assertEquals("fast", c.stepsComputationMask().orElseThrow().policyName());
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
    assertEquals("1101", o.cacheConfig().stepsComputationMask().orElseThrow().toString());
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
    Files.writeString(bad, "cache_config: {}\nparallelism_config: {ring_size: 2, ulysses_size: 2, ulysses_anything: true}\n");
    e = assertThrows(ConfigException.class, () -> CacheOptions.load(bad));
    assertTrue(e.getMessage().contains("bad.yaml") && e.getMessage().contains("ulysses_anything")
        && e.getMessage().contains("ring"), e.getMessage());
    Files.writeString(bad, "cache_config: {}\nquantize_config: {quant_type: fp8}\n");
    e = assertThrows(ConfigException.class, () -> CacheOptions.load(bad));
    assertTrue(e.getMessage().contains("quantize_config"), e.getMessage());
    Files.writeString(bad, "enable_dynamic_prune_threshold: true\n");
    e = assertThrows(ConfigException.class, () -> CacheOptions.load(bad));
    assertTrue(e.getMessage().contains("DBPrune"), e.getMessage());
    e = assertThrows(ConfigException.class, () -> CacheOptions.load(dir.resolve("missing.yaml")));
    assertTrue(e.getMessage().contains("missing.yaml"), e.getMessage());
  }

  @Test
  void configsAreImmutableRecords_withTypedOptionalsAndTheSameKeysAsFiles() {
    DBCacheConfig a = DBCacheConfig.builder().fnComputeBlocks(2).maxCachedSteps(5).build();
    DBCacheConfig b = a.toBuilder().build();
    assertEquals(a, b);
    assertEquals(a.hashCode(), b.hashCode());
    assertEquals(java.util.OptionalInt.of(5), a.maxCachedSteps());
    assertTrue(a.toBuilder().maxCachedSteps(-1).build().maxCachedSteps().isEmpty(), "-1 means unlimited");
    // a file's form of the same config loads to the same record
    assertEquals(a, CacheOptions.parse("Fn_compute_blocks: 2\nmax_cached_steps: 5\n", false).cacheConfig());
    java.util.Map<String, Object> m = a.asMap();
    assertEquals(5, m.get("max_cached_steps"));
    assertEquals(-1, m.get("max_continuous_cached_steps"));
    assertTrue(m.containsKey("cache_buffer_precision") && !m.containsKey("non_prune_block_ids"), m.toString());
    assertTrue(DBPruneConfig.defaults().asMap().containsKey("force_reduce_calibrator_vram"));
    // the canonical constructor checks too: a record cannot hold an invalid value
    ConfigException e = assertThrows(ConfigException.class, () -> new DBCacheConfig(0, 0, 0.1, null, 0, 1, null,
        null, null, false, true, null, null, StepsPolicy.DYNAMIC, null, RefreshPolicy.ONCE, null));
    assertEquals("Fn_compute_blocks", e.field());
  }

  @Test
  void aCacheDitDump_loads_andUnimplementedKeysAreRejectedOnlyAwayFromTheirDefaults(@TempDir Path dir)
      throws Exception {
    // keys as cache-dit's dataclasses dump them (dataclasses.asdict of a DBPrune config and a calibrator)
    Path dump = dir.resolve("dump.yaml");
    Files.writeString(dump, """
        cache_config:
          cache_type: DBPrune
          Fn_compute_blocks: 8
          Bn_compute_blocks: 8
          residual_diff_threshold: 0.12
          max_accumulated_residual_diff_threshold: null
          max_warmup_steps: 8
          warmup_interval: 1
          max_cached_steps: -1
          max_continuous_cached_steps: 2
          enable_separate_cfg: null
          cfg_compute_first: false
          cfg_diff_compute_separate: true
          num_inference_steps: null
          steps_computation_mask: null
          steps_computation_policy: dynamic
          force_refresh_step_hint: null
          force_refresh_step_policy: once
          enable_dynamic_prune_threshold: true
          max_dynamic_prune_threshold: null
          dynamic_prune_threshold_relax_ratio: 1.25
          non_prune_block_ids: [8, 9, 10, 11, 12]
          force_reduce_calibrator_vram: false
        calibrator_config:
          enable_calibrator: true
          enable_encoder_calibrator: true
          calibrator_type: taylorseer
          calibrator_cache_type: residual
          calibrator_kwargs: {}
          taylorseer_order: 1
        """);
    CacheOptions o = CacheOptions.load(dump);
    DBPruneConfig p = assertInstanceOf(DBPruneConfig.class, o.cacheConfig());
    assertEquals("DBPrune_F8B8_W8I1M0MC2_R0.12", p.strify());
    assertEquals(List.of(8, 9, 10, 11, 12), p.nonPruneBlockIds());
    assertEquals(TaylorSeerCalibratorConfig.ofOrder(1), o.calibratorConfig());
    // a DBCache dump may carry the DBPrune-only flag at its default too
    assertTrue(CacheOptions.parse("cache_type: DBCache\nforce_reduce_calibrator_vram: false\n", false).cacheConfig()
        instanceof DBCacheConfig);
    ConfigException e = assertThrows(ConfigException.class,
        () -> CacheOptions.parse("cache_type: DBCache\nforce_reduce_calibrator_vram: true\n", false));
    assertTrue(e.getMessage().contains("DBPrune"), e.getMessage());
    Files.writeString(dump, "cache_config: {}\ncalibrator_config:\n  calibrator_kwargs: {n_derivatives: 3}\n");
    e = assertThrows(ConfigException.class, () -> CacheOptions.load(dump));
    assertEquals("calibrator_kwargs", e.field());
    assertTrue(e.getMessage().contains("dump.yaml") && e.getMessage().contains("not supported"), e.getMessage());
  }

  @Test
  void aBadMaskInAFile_namesTheFileAndTheKey(@TempDir Path dir) throws Exception {
    Path file = dir.resolve("mask.yaml");
    Files.writeString(file, "cache_config:\n  steps_computation_mask: \"11x1\"\n");
    ConfigException e = assertThrows(ConfigException.class, () -> CacheOptions.load(file));
    assertTrue(e.getMessage().startsWith(file.toString()) && e.getMessage().contains("steps_computation_mask"),
        e.getMessage());
    assertEquals("steps_computation_mask", e.field());
    assertEquals(file.toString(), e.file());
    Files.writeString(file, "cache_config:\n  steps_computation_mask: turbo\n");
    e = assertThrows(ConfigException.class, () -> CacheOptions.load(file));
    assertTrue(e.getMessage().startsWith(file.toString()) && e.getMessage().contains("slow"), e.getMessage());
    // every config error is one of cachedit's exceptions
    assertInstanceOf(io.cachedit.error.CacheDitException.class, e);
  }

  @Test
  void dmdCalibrator_fromItsSectionAndFromLegacyKeys() {
    CacheOptions o = CacheOptions.parse("""
        cache_config: {Fn_compute_blocks: 1}
        calibrator_config: {calibrator_type: dmd, dmd_history: 5, dmd_svd_precision: low}
        """, false);
    DMDCalibratorConfig d = assertInstanceOf(DMDCalibratorConfig.class, o.calibratorConfig());
    assertEquals(5, d.history());
    assertEquals(DMDCalibratorConfig.SvdPrecision.LOW, d.svdPrecision());
    assertEquals("DMDH5l", d.strify());
    assertEquals("DMDH6", DMDCalibratorConfig.defaults().strify());
    DMDCalibratorConfig legacy = assertInstanceOf(DMDCalibratorConfig.class, CacheOptions.parse(
        "enable_dmd: true\ndmd_rank: 3\n", false).calibratorConfig());
    assertEquals(3, legacy.rank());
    assertTrue(legacy.enableEncoderCalibrator(), "the legacy loader's DMD encoder default follows enable_dmd");
    ConfigException e = assertThrows(ConfigException.class, () -> CacheOptions.parse(
        "enable_dmd: true\nenable_taylorseer: true\n", false));
    assertTrue(e.getMessage().contains("mutually exclusive"), e.getMessage());
    e = assertThrows(ConfigException.class, () -> CacheOptions.parse(
        "cache_config: {}\ncalibrator_config: {calibrator_type: dmd, dmd_history: 1}\n", false));
    assertEquals("dmd_history", e.field());
  }

  @Test
  void presets_noneIsEmpty_unknownNamesThePresets() {
    assertTrue(CachePresets.get("none").isEmpty());
    assertTrue(CachePresets.isNone(" None "));
    for (String name : CachePresets.NAMES.subList(1, CachePresets.NAMES.size())) {
      assertTrue(CachePresets.get(name).isPresent(), name);
    }
    ConfigException e = assertThrows(ConfigException.class, () -> CachePresets.get("turbo"));
    assertTrue(e.getMessage().contains("turbo") && e.getMessage().contains("quadratic-9"), e.getMessage());
    assertThrows(ConfigException.class, () -> CachePresets.require("none"));
  }

  @Test
  void paramsModifiersInAFile_mayNameTheirList() {
    CacheOptions o = CacheOptions.parse("""
        cache_config: {Fn_compute_blocks: 1}
        params_modifiers:
          - cache_config: {residual_diff_threshold: 0.2}
            blocks_name: single_transformer_blocks
        """, false);
    assertEquals(java.util.Optional.of("single_transformer_blocks"), o.paramsModifiers().get(0).list());
    ConfigException e = assertThrows(ConfigException.class, () -> CacheOptions.parse(
        "cache_config: {}\nparams_modifiers:\n  - blocks_name: 3\n", false));
    assertEquals("blocks_name", e.field());
  }
}
