package io.cachedit.cache;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.cachedit.error.CacheDitException;
import io.cachedit.error.ConfigException;
import io.cachedit.io.SafetensorsWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Cache config files: duplicates, size and file kind are checked before parsing; failed writes leave nothing. */
class CacheConfigLimitsTest {
  @Test
  void aYamlKeyGivenTwiceIsRefused(@TempDir Path dir) throws Exception {
    Path f = Files.writeString(dir.resolve("c.yaml"), "cache_config:\n  residual_diff_threshold: 0.1\n"
        + "  residual_diff_threshold: 0.3\n");
    ConfigException e = assertThrows(ConfigException.class, () -> CacheOptions.load(f));
    assertTrue(e.getMessage().contains("residual_diff_threshold") && e.getMessage().contains("c.yaml"), e.getMessage());
  }

  @Test
  void aHugeConfigIsRefusedBeforeParsing(@TempDir Path dir) throws Exception {
    Path f = Files.writeString(dir.resolve("big.yaml"), "# " + "x".repeat(5 << 20) + "\ncache_config: {}\n");
    long t0 = System.nanoTime();
    ConfigException e = assertThrows(ConfigException.class, () -> CacheOptions.load(f));
    assertTrue(e.getMessage().contains("at most"), e.getMessage());
    assertTrue(System.nanoTime() - t0 < 2_000_000_000L);
    ConfigException folder = assertThrows(ConfigException.class, () -> CacheOptions.load(dir));
    assertTrue(folder.getMessage().contains("not a regular file"), folder.getMessage());
  }

  @Test
  void aFailedSafetensorsWriteLeavesNoTemporaryFile(@TempDir Path dir) throws Exception {
    Path target = Files.createDirectories(dir.resolve("out.safetensors"));
    Files.writeString(target.resolve("keep"), "a folder is in the way");
    try (PointerScope s = new PointerScope()) {
      assertThrows(CacheDitException.class, () -> SafetensorsWriter.write(target, Map.of("sample", torch.ones(2)),
          Map.of()));
    }
    try (var files = Files.list(dir)) {
      assertTrue(files.noneMatch(p -> p.getFileName().toString().endsWith(".tmp")), "no .tmp left");
    }
  }

  @Test
  void aDifferentlyCasedKeyIsUnknownNotASecondValue() {
    ConfigException e = assertThrows(ConfigException.class, () -> CacheOptions.parse(
        "cache_config:\n  Fn_compute_blocks: 1\n  fn_compute_blocks: 4\n", false));
    assertTrue(e.getMessage().contains("fn_compute_blocks") && e.getMessage().contains("give it once"),
        e.getMessage());
  }

  @Test
  void moreParamsModifiersThanBlockListsAreRefusedWhenCachingIsEnabled() {
    CacheOptions o = CacheOptions.parse("cache_config: {Fn_compute_blocks: 1, Bn_compute_blocks: 0}\n"
        + "params_modifiers:\n  - cache_config: {residual_diff_threshold: 0.1}\n"
        + "  - cache_config: {residual_diff_threshold: 0.2}\n  - cache_config: {residual_diff_threshold: 0.3}\n",
        false);
    try (PointerScope s = new PointerScope();
         io.cachedit.models.common.DiffusersTransformer m = io.cachedit.pipeline.ModelRegistry.defaults()
             .randomTransformer(io.cachedit.models.TinyConfigs.flux(false), 1, org.bytedeco.pytorch.global.torch.ScalarType.Float)) {
      CacheDitException e = assertThrows(CacheDitException.class, () -> io.cachedit.CacheDit.enableCache(m, o).close());
      assertTrue(e.getMessage().contains("params_modifiers") || e.getMessage().contains("modifier"), e.getMessage());
    }
  }
}
