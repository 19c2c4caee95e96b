package io.cachedit.parallel;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.cachedit.cache.CacheOptions;
import io.cachedit.error.ConfigException;
import io.cachedit.error.UnsupportedModelException;
import io.cachedit.models.TinyConfigs;
import io.cachedit.models.common.DiffusersTransformer;
import io.cachedit.pipeline.ModelRegistry;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;

/** The parallelism settings, their three forms (API, config file, command line) and their validation. */
class ParallelismConfigTest {
  @Test
  void commandLineSpec_allFieldsAndTheReferenceTags() {
    ParallelismConfig c = ParallelismConfig.parse("ulysses=2,anything,float8");
    assertEquals(2, c.ulysses());
    assertTrue(c.ulyssesAnything() && c.ulyssesFloat8() && !c.ulyssesAsync());
    assertEquals("Ulysses2_UAA_F8_", c.strify());
    assertEquals(ParallelismBackend.CACHE_DIT, c.resolvedBackend());
    assertEquals("Ulysses2_Ring2_", ParallelismConfig.parse("ulysses=2,ring=2").strify());
    assertEquals("Ulysses2_UF8_UAS_", ParallelismConfig.parse("ulysses=2, float8, async").strify());
    ParallelismConfig ring = ParallelismConfig.parse("ring=3,allgather,ring-bf16");
    assertEquals(RingRotateMethod.ALLGATHER, ring.ringRotateMethod());
    assertFalse(ring.ringConvertToFp32());
    assertEquals(3, ring.worldSize());
    assertEquals(ParallelismBackend.NATIVE_PYTORCH, ParallelismConfig.parse("tp=2").resolvedBackend());
    assertEquals(ParallelismBackend.NATIVE_HYBRID, ParallelismConfig.parse("ulysses=2,tp=2").resolvedBackend());
  }

  @Test
  void badSpecsNameWhatIsWrong() {
    assertMessage(() -> ParallelismConfig.parse("ulysses=two"), "ulysses=two", "whole number");
    assertMessage(() -> ParallelismConfig.parse("ulyses=2"), "ulyses=2", "ulysses=N");
    assertMessage(() -> ParallelismConfig.parse("ulysses"), "ulysses", "needs a size");
    assertMessage(() -> ParallelismConfig.parse(""), "--parallel", "empty");
    assertMessage(() -> ParallelismConfig.parse("ring=2,anything"), "ulysses_anything", "ring");
    assertMessage(() -> ParallelismConfig.parse("float8"), "ulysses_size", "ulysses_float8");
    assertMessage(() -> ParallelismConfig.parse("ulysses=0"), "ulysses_size", ">= 1");
    assertMessage(() -> ParallelismConfig.parse("ulysses=1"), "no parallelism");
    assertMessage(() -> ParallelismConfig.builder().backend(ParallelismBackend.NATIVE_PYTORCH).ulysses(2).build(),
        "backend", "cache_dit");
  }

  @Test
  void validationAgainstTheWorldComesBeforeAnyCollective() {
    assertMessage(() -> ParallelismConfig.parse("ulysses=2").validateFor(3), "ulysses_size", "= 2 ranks",
        "WORLD_SIZE");
    assertMessage(() -> ParallelismConfig.parse("ulysses=3").validateFor(2), "3 ranks", "has 2");
    ParallelismConfig.parse("ulysses=2,ring=2").validateFor(4);
    try (DiffusersTransformer dit = ModelRegistry.defaults().randomTransformer(TinyConfigs.dit(), 1, ScalarType.Float);
         DiffusersTransformer flux = ModelRegistry.defaults().randomTransformer(TinyConfigs.flux(false), 1,
             ScalarType.Float)) {
      UnsupportedModelException e = assertThrows(UnsupportedModelException.class,
          () -> ContextParallel.validate(ParallelismConfig.parse("ulysses=2"), 2, List.of(dit)));
      assertTrue(e.getMessage().contains("DiTTransformer2DModel") && e.getMessage().contains("no context-parallel plan"),
          e.getMessage());
      ContextParallel.validate(ParallelismConfig.parse("ulysses=2"), 2, List.of(flux));
      // hybrid needs the model loaded for the tensor-parallel group; CFG parallelism needs a pipeline
      assertMessage(() -> ContextParallel.validate(ParallelismConfig.parse("ulysses=2,tp=2"), 4, List.of(flux)),
          "tp_size", "split over 1 rank(s)", "TensorParallelGroup.join");
      assertMessage(() -> Parallelism.validate(ParallelismConfig.parse("tp=2"), 2, null, List.of(flux)),
          "tp_size", "split over 1 rank(s)");
      assertMessage(() -> Parallelism.validate(ParallelismConfig.parse("cfg=2"), 2, null, List.of(flux)),
          "cfg_size", "run a pipeline");
      assertMessage(() -> ContextParallel.validate(ParallelismConfig.parse("ulysses=2"), 4, List.of(flux)),
          "WORLD_SIZE");
      assertMessage(() -> ContextParallel.validate(ParallelismConfig.builder().ulysses(2)
          .extraParallelModules(List.of("vae")).build(), 2, List.of(flux)), "extra_parallel_modules", "not available");
      try (io.cachedit.CacheHandle h = io.cachedit.CacheDit.enableCache(flux, CacheOptions.of(
          io.cachedit.cache.DBCacheConfig.builder().fnComputeBlocks(1).build()))) {
        IllegalStateException cached = assertThrows(IllegalStateException.class,
            () -> ContextParallel.validate(ParallelismConfig.parse("ulysses=2"), 2, List.of(flux)));
        assertTrue(cached.getMessage().contains("caching is already enabled") && cached.getMessage()
            .contains("enable context parallelism first"), cached.getMessage());
      }
    }
  }

  @Test
  void configFileSection_autoSizesAndTheReferenceKeys() {
    Map<String, Object> doc = new LinkedHashMap<>();
    doc.put("cache_config", Map.of("residual_diff_threshold", 0.12));
    doc.put("parallelism_config", Map.of("ulysses_size", "auto", "ring_size", 2, "ring_rotate_method", "allgather",
        "ring_convert_to_fp32", false, "backend", "native_diffuser"));
    CacheOptions o = CacheOptions.fromMap(doc, 8);
    ParallelismConfig p = o.parallelism().orElseThrow();
    assertEquals(4, p.ulysses());
    assertEquals(2, p.ring());
    assertEquals(RingRotateMethod.ALLGATHER, p.ringRotateMethod());
    assertFalse(p.ringConvertToFp32());
    assertEquals(ParallelismBackend.CACHE_DIT, p.backend());
    assertEquals(0.12, o.cacheConfig().residualDiffThreshold(), 0);
    assertMessage(() -> CacheOptions.fromMap(Map.of("parallelism_config", Map.of("ulysses_size", "auto")), 1),
        "no parallelism");
    assertMessage(() -> CacheOptions.fromMap(Map.of("parallelism_config", Map.of("ulysses_size", "auto",
        "ring_size", 3)), 4), "ulysses_size", "not a multiple");
    assertMessage(() -> CacheOptions.fromMap(Map.of("parallelism_config", Map.of("ulysses_sise", 2)), 2),
        "ulysses_sise", "unknown");
    assertMessage(() -> CacheOptions.fromMap(Map.of("parallelism_config", Map.of("ulysses", 2, "ulysses_size", 2)),
        2), "ulysses", "use one");
    // a section alone is a sectioned document with the default cache config
    assertTrue(CacheOptions.fromMap(Map.of("parallelism_config", Map.of("ulysses", 2)), 2).parallelism().isPresent());
  }

  @Test
  void environment_torchrunVariablesAndTheirErrors() {
    DistributedEnvironment e = DistributedEnvironment.from(Map.of("RANK", "1", "WORLD_SIZE", "4", "MASTER_ADDR",
        "10.0.0.7", "MASTER_PORT", "40000"));
    assertEquals(1, e.rank());
    assertEquals(1, e.localRank());
    assertEquals(4, e.worldSize());
    assertEquals("10.0.0.7", e.masterAddr());
    assertEquals(40000, e.masterPort());
    assertEquals(1, DistributedEnvironment.from(Map.of()).worldSize());
    assertMessage(() -> DistributedEnvironment.from(Map.of("RANK", "4", "WORLD_SIZE", "4")), "RANK", "0..3");
    assertMessage(() -> DistributedEnvironment.from(Map.of("WORLD_SIZE", "2")), "RANK", "must be set");
    assertMessage(() -> DistributedEnvironment.from(Map.of("RANK", "0", "WORLD_SIZE", "two")), "WORLD_SIZE",
        "whole number");
    assertMessage(() -> DistributedEnvironment.from(Map.of("RANK", "0", "WORLD_SIZE", "2", "MASTER_PORT", "70000")),
        "MASTER_PORT", "1..65535");
    assertThrows(IllegalArgumentException.class, () -> ProcessGroups.create(e, Duration.ZERO));
  }

  private static void assertMessage(org.junit.jupiter.api.function.Executable call, String... parts) {
    ConfigException e = assertThrows(ConfigException.class, call);
    for (String p : parts) {
      assertTrue(e.getMessage().contains(p), "message lacks \"" + p + "\": " + e.getMessage());
    }
  }
}
