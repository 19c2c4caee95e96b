package io.cachedit.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.cachedit.io.SafetensorsFile;
import io.cachedit.io.SafetensorsWriter;
import io.cachedit.kernels.NativeRuntime;
import io.cachedit.models.FluxModelTestSupport;
import io.cachedit.models.TinyConfigs;
import io.cachedit.models.common.DiffusersTransformer;
import io.cachedit.models.common.ForwardInputs;
import io.cachedit.pipeline.ModelRegistry;
import java.nio.file.Path;
import java.util.Map;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code cachedit launch}: real processes on 127.0.0.1 running a parallel command. */
class LaunchCommandTest {
  record Output(int code, String out, String err) {}

  static Output run(String... args) {
    FashionCommandsTest.Run r = FashionCommandsTest.run(args);
    return new Output(r.code(), r.out(), r.err());
  }

  @Test
  void forwardOnTwoRanks_rankZeroWritesTheSingleProcessResult(@TempDir Path dir) {
    NativeRuntime.initialize();
    try (PointerScope scope = new PointerScope();
         DiffusersTransformer model = ModelRegistry.defaults().randomTransformer(TinyConfigs.flux(true), 3,
             ScalarType.Float)) {
      ModelRegistry.save(model, dir.resolve("model/transformer"));
      Map<String, Tensor> inputs = FluxModelTestSupport.inputs(2, 0.75);  // 5 text tokens: uneven on 2 ranks
      SafetensorsWriter.write(dir.resolve("in.safetensors"), inputs, Map.of());
      Output r = run("launch", "--nproc", "2", "--", "forward", "--model", dir.resolve("model").toString(),
          "--inputs", dir.resolve("in.safetensors").toString(), "--out", dir.resolve("out.safetensors").toString(),
          "--parallel", "ulysses=2,anything");
      assertEquals(0, r.code(), r.out() + r.err());
      assertTrue(r.out().contains("[rank 0] FluxTransformer2DModel: sample"), r.out());
      assertTrue(!r.out().contains("[rank 1] FluxTransformer2DModel"), "only rank 0 reports: " + r.out());
      Tensor expected = model.forward(ForwardInputs.of(inputs), null);
      try (SafetensorsFile out = SafetensorsFile.open(dir.resolve("out.safetensors"))) {
        assertTrue(expected.sub(out.tensor("sample")).abs().max().item_double() < 1e-5);
        assertEquals("Ulysses2_UAA_", out.metadata().get("parallel"));
      }
    }
  }

  /** The main job under context parallelism: same decisions and images as one process, compared in one run. */
  @Test
  void generateUnderLaunch_decidesAndDrawsAsOneProcess(@TempDir Path dir) throws Exception {
    Path home = FashionCommandsTest.tinyHome(dir);
    // the parallelism from the config file, its size resolved against WORLD_SIZE
    java.nio.file.Files.writeString(dir.resolve("cache.yaml"), """
        cache_config: {Fn_compute_blocks: 1, residual_diff_threshold: 1.5, max_warmup_steps: 4,
                       max_continuous_cached_steps: 2}
        parallelism_config: {ulysses_size: auto}
        """);
    Output r = run("launch", "--nproc", "2", "--", "generate", "--prompt", "sneaker", "--n", "2", "--steps", "10",
        "--cache-config", dir.resolve("cache.yaml").toString(), "--compare", "--json", "--model",
        home.resolve(io.cachedit.fashion.BundledModel.DEFAULT_DIR).toString(), "--out",
        dir.resolve("grid.png").toString());
    assertEquals(0, r.code(), r.out() + r.err());
    String line = r.out().lines().filter(l -> l.startsWith("[rank 0] {")).findFirst().orElseThrow(
        () -> new AssertionError("no JSON from rank 0: " + r.out()));
    com.fasterxml.jackson.databind.JsonNode j = new com.fasterxml.jackson.databind.ObjectMapper().readTree(
        line.substring("[rank 0] ".length()));
    assertEquals("Ulysses2_", j.get("parallel").asText());
    assertEquals(2, j.get("world_size").asInt());
    assertTrue(j.get("same_decisions_as_single_process").asBoolean(), line);
    assertTrue(j.get("max_abs_diff_vs_single_process").asDouble() < 1e-4, line);
    assertTrue(j.get("cached_steps").asInt() > 0, line);
    for (String key : new String[] {"speedup", "psnr", "uncached_seconds", "single_process_cached_seconds"}) {
      assertTrue(j.has(key), key + " missing: " + line);
    }
    assertTrue(java.nio.file.Files.size(dir.resolve("grid-compare.png")) > 0);
    assertTrue(r.out().lines().noneMatch(l -> l.startsWith("[rank 1] {")), "rank 1 prints nothing: " + r.out());
  }

  /** The bundled model's 4 heads on 3 ranks (2, 2 and 0 real heads) with 49 + 4 tokens per image. */
  @Test
  void bundledModelOnThreeRanks_headsAndTokensThreeDoesNotDivide(@TempDir Path dir) throws Exception {
    Path bundled = Path.of("../../models/fashion-flux");
    Output r = run("launch", "--nproc", "3", "--", "generate", "--prompt", "coat", "--n", "2", "--steps", "6",
        "--cache", "dbcache", "--parallel", "ulysses=3,anything", "--compare", "--json", "--model",
        bundled.toString(), "--out", dir.resolve("coat.png").toString());
    assertEquals(0, r.code(), r.out() + r.err());
    String line = r.out().lines().filter(l -> l.startsWith("[rank 0] {")).findFirst().orElseThrow(
        () -> new AssertionError("no JSON from rank 0: " + r.out()));
    com.fasterxml.jackson.databind.JsonNode j = new com.fasterxml.jackson.databind.ObjectMapper().readTree(
        line.substring("[rank 0] ".length()));
    assertEquals("Ulysses3_UAA_", j.get("parallel").asText());
    assertTrue(j.get("same_decisions_as_single_process").asBoolean(), line);
    assertTrue(j.get("max_abs_diff_vs_single_process").asDouble() < 1e-4, line);
  }

  /**
   * CFG parallelism (cond and uncond on different ranks) draws the single-process grid byte for byte;
   * tensor parallelism (each rank loads half of the split weights) draws it up to the rounding of its
   * row-split sums (an 8-bit level on a few pixels at most); tp=3 does not split 4 heads.
   */
  /** {max |a - b| over the pixels' 8-bit channels, pixels that differ}. */
  static int[] pixelDiff(Path a, Path b) throws java.io.IOException {
    java.awt.image.BufferedImage x = javax.imageio.ImageIO.read(a.toFile());
    java.awt.image.BufferedImage y = javax.imageio.ImageIO.read(b.toFile());
    assertEquals(x.getWidth(), y.getWidth());
    assertEquals(x.getHeight(), y.getHeight());
    int max = 0;
    int count = 0;
    for (int r = 0; r < x.getHeight(); r++) {
      for (int c = 0; c < x.getWidth(); c++) {
        int p = x.getRGB(c, r);
        int q = y.getRGB(c, r);
        int d = 0;
        for (int shift = 0; shift < 24; shift += 8) {
          d = Math.max(d, Math.abs(((p >> shift) & 0xff) - ((q >> shift) & 0xff)));
        }
        max = Math.max(max, d);
        count += d > 0 ? 1 : 0;
      }
    }
    return new int[] {max, count};
  }

  @Test
  void tensorAndCfgParallel_drawTheSingleProcessImages(@TempDir Path dir) throws Exception {
    Path bundled = Path.of("../../models/fashion-flux");
    String[] common = {"generate", "--prompt", "bag", "--n", "2", "--steps", "6", "--seed", "5", "--model",
        bundled.toString()};
    Output single = run(concat(common, "--out", dir.resolve("single.png").toString()));
    assertEquals(0, single.code(), single.out() + single.err());
    byte[] expected = java.nio.file.Files.readAllBytes(dir.resolve("single.png"));
    for (String modes : new String[] {"tp=2", "cfg=2"}) {
      Path png = dir.resolve(modes.replace('=', '-') + ".png");
      Output r = run(concat(concat(new String[] {"launch", "--nproc", "2", "--"}, common), "--parallel", modes,
          "--out", png.toString()));
      assertEquals(0, r.code(), r.out() + r.err());
      assertTrue(r.out().contains("[rank 0] parallel: " + modes.replace("=", "").toUpperCase() + "_ on 2 processes"),
          r.out());
      if (modes.startsWith("cfg")) {  // each rank runs one process's computations: the same bits
        assertTrue(java.util.Arrays.equals(expected, java.nio.file.Files.readAllBytes(png)), modes + " draws other images");
      } else {  // row-split layers add partial sums, a float rounding apart: at most one 8-bit level here and there
        int[] diff = pixelDiff(dir.resolve("single.png"), png);
        assertTrue(diff[0] <= 1 && diff[1] <= 16, modes + ": max pixel difference " + diff[0] + " on " + diff[1]
            + " pixels");
      }
    }
    Output bad = run(concat(concat(new String[] {"launch", "--nproc", "3", "--"}, common), "--parallel", "tp=3",
        "--out", dir.resolve("bad.png").toString()));
    assertNotEquals(0, bad.code());
    assertTrue(bad.err().contains("tp_size = 3: FluxTransformer2DModel has 4 attention heads (num_attention_heads)")
        && bad.err().contains("valid tp sizes: 1, 2, 4"), bad.err());
  }

  private static String[] concat(String[] a, String... b) {
    String[] all = java.util.Arrays.copyOf(a, a.length + b.length);
    System.arraycopy(b, 0, all, a.length, b.length);
    return all;
  }

  @Test
  void benchUnderLaunch_rankZeroWritesTheTable(@TempDir Path dir) throws Exception {
    Path home = FashionCommandsTest.tinyHome(dir);
    io.cachedit.fashion.FashionTestData.writeIdx(io.cachedit.fashion.FashionTestData.bands(40, 1), dir.resolve("data"),
        "t10k");
    Output r = run("launch", "--nproc", "2", "--", "bench", "--steps", "6", "--prompts", "bag", "--seeds", "0", "--n",
        "2", "--only", "F1B0 R0.24 MC5", "--parallel", "ulysses=2", "--data", dir.resolve("data").toString(),
        "--model", home.resolve(io.cachedit.fashion.BundledModel.DEFAULT_DIR).toString(), "--classifier",
        home.resolve(io.cachedit.fashion.FashionClassifier.DEFAULT_DIR).toString(), "--out",
        dir.resolve("bench").toString());
    assertEquals(0, r.code(), r.out() + r.err());
    String md = java.nio.file.Files.readString(dir.resolve("bench/bench.md"));
    assertTrue(md.contains("--parallel ulysses=2") && md.contains("| uncached | 6 |"), md);
    assertTrue(r.out().contains("[rank 0] wrote ") && !r.out().contains("[rank 1] wrote "), r.out());
  }

  @Test
  void aFailingRankStopsTheLaunchAndIsNamed(@TempDir Path dir) {
    try (PointerScope scope = new PointerScope();
         DiffusersTransformer model = ModelRegistry.defaults().randomTransformer(TinyConfigs.dit(), 3,
             ScalarType.Float)) {
      ModelRegistry.save(model, dir.resolve("model/transformer"));
      SafetensorsWriter.write(dir.resolve("in.safetensors"), Map.of("x", org.bytedeco.pytorch.global.torch.ones(1)),
          Map.of());
      // DiT has no context-parallel plan: every rank refuses before any collective
      Output r = run("launch", "--nproc", "2", "--", "forward", "--model", dir.resolve("model").toString(),
          "--inputs", dir.resolve("in.safetensors").toString(), "--out", dir.resolve("o.safetensors").toString(),
          "--parallel", "ulysses=2");
      assertNotEquals(0, r.code());
      assertTrue(r.err().matches("(?s).*cachedit launch: rank [01] exited with code 1; stopped the other ranks.*"),
          r.err());
      assertTrue(r.err().contains("DiTTransformer2DModel has no context-parallel plan"), r.err());
      // a size that does not fit the world fails naming the field and WORLD_SIZE
      r = run("launch", "--nproc", "2", "--", "forward", "--model", dir.resolve("model").toString(),
          "--inputs", dir.resolve("in.safetensors").toString(), "--out", dir.resolve("o.safetensors").toString(),
          "--parallel", "ulysses=3");
      assertNotEquals(0, r.code());
      assertTrue(r.err().contains("ulysses_size") && r.err().contains("WORLD_SIZE"), r.err());
      assertEquals(1, run("launch", "--nproc", "0", "--", "forward").code());
    }
  }
}
