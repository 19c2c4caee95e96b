package io.cachedit.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.cachedit.fashion.BundledModel;
import io.cachedit.fashion.ClassTextEncoder;
import io.cachedit.fashion.FashionClassifier;
import io.cachedit.models.flux.FluxTransformer2DModel;
import io.cachedit.pipeline.ModelRegistry;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code generate}, {@code metrics} and {@code bench} end to end on a tiny random model: real files, real output. */
class FashionCommandsTest {
  static final String TINY = """
      {"_class_name": "FluxTransformer2DModel", "patch_size": 1, "in_channels": 16, "num_layers": 1,
       "num_single_layers": 2, "attention_head_dim": 8, "num_attention_heads": 2, "joint_attention_dim": 12,
       "pooled_projection_dim": 6, "guidance_embeds": false, "axes_dims_rope": [2, 2, 4]}
      """;

  record Run(int code, String out, String err) {}

  static Run run(String... args) {
    PrintStream out = System.out;
    PrintStream err = System.err;
    ByteArrayOutputStream o = new ByteArrayOutputStream();
    ByteArrayOutputStream e = new ByteArrayOutputStream();
    System.setOut(new PrintStream(o, true, StandardCharsets.UTF_8));
    System.setErr(new PrintStream(e, true, StandardCharsets.UTF_8));
    try {
      int code = Main.run(args);
      return new Run(code, o.toString(StandardCharsets.UTF_8), e.toString(StandardCharsets.UTF_8));
    } finally {
      System.setOut(out);
      System.setErr(err);
    }
  }

  static Path tinyHome(Path dir) {
    try (PointerScope scope = new PointerScope()) {
      FluxTransformer2DModel m = (FluxTransformer2DModel) ModelRegistry.defaults().randomTransformer(TINY, 1, ScalarType.Float);
      torch.manual_seed(2);
      ClassTextEncoder te = new ClassTextEncoder(torch.randn(11, 4, 12), torch.randn(11, 6));
      BundledModel.save(m, te, dir.resolve(BundledModel.DEFAULT_DIR));
      m.close();
      try (FashionClassifier c = FashionClassifier.random(3)) {
        c.save(dir.resolve(FashionClassifier.DEFAULT_DIR), null);
      }
    }
    return dir;
  }

  @Test
  void generateCompareWritesImagesAndReportsStats(@TempDir Path dir) throws Exception {
    Path home = tinyHome(dir);
    String old = System.getProperty("cachedit.home");
    System.setProperty("cachedit.home", home.toString());
    try {
      Run r = run("generate", "--prompt", "ankle boot", "--n", "3", "--steps", "8", "--cache", "dbcache-fast",
          "--compare", "--out", dir.resolve("out/grid.png").toString(), "--save-images", dir.resolve("imgs").toString(),
          "--json");
      assertEquals(0, r.code(), r.err());
      JsonNode j = new ObjectMapper().readTree(r.out());
      for (String key : new String[] {"seconds", "uncached_seconds", "speedup", "psnr", "ssim", "cached_steps",
          "ideal_speedup", "class_accuracy", "summary"}) {
        assertTrue(j.has(key), key + " missing in " + r.out());
      }
      assertEquals("transformer_blocks", j.get("summary").get(0).get("name").asText());
      // the decision trace: one entry per transformer call of the 8 steps, each with its reason
      JsonNode decisions = j.get("summary").get(0).get("decisions");
      assertEquals(8, decisions.size(), decisions.toString());
      assertEquals("warmup", decisions.get(0).get("reason").asText());
      assertTrue(decisions.get(0).get("diff").isNull());
      long cachedDecisions = 0;
      for (JsonNode d : decisions) {
        cachedDecisions += d.get("cached").asBoolean() ? 1 : 0;
      }
      assertEquals(j.get("cached_steps").asLong(), cachedDecisions);
      assertTrue(Files.size(dir.resolve("out/grid.png")) > 0);
      assertTrue(Files.size(dir.resolve("out/grid-compare.png")) > 0);
      assertTrue(Files.exists(dir.resolve("imgs/ankle_boot_002.png")));

      // metrics over what generate wrote: identical dirs give infinite PSNR, SSIM 1, and accuracy/fid run
      Run m = run("metrics", "all", "-i1", dir.resolve("imgs").toString(), "-i2", dir.resolve("imgs").toString(),
          "--classifier", home.resolve(FashionClassifier.DEFAULT_DIR).toString(), "--json");
      assertEquals(0, m.code(), m.err());
      JsonNode mj = new ObjectMapper().readTree(m.out());
      assertEquals(Double.POSITIVE_INFINITY, mj.get("psnr").asDouble());
      assertEquals(1.0, mj.get("ssim").asDouble(), 1e-12);
      assertEquals(3, mj.get("n").asInt());
      assertEquals(0.0, mj.get("fid").asDouble(), 1e-4);
      assertTrue(mj.get("accuracy").asDouble() >= 0 && mj.get("accuracy").asDouble() <= 1);

      Run bad = run("generate", "--prompt", "hat", "--out", dir.resolve("x.png").toString());
      assertEquals(1, bad.code());
      assertTrue(bad.err().contains("hat") && bad.err().contains("sneaker"), bad.err());
      Run noCache = run("generate", "--prompt", "bag", "--compare", "--out", dir.resolve("x.png").toString());
      assertEquals(1, noCache.code());
      assertTrue(noCache.err().contains("--cache"), noCache.err());
      // --help lists every preset, from the preset table
      Run help = run("generate", "--help");
      for (String name : io.cachedit.cache.CachePresets.NAMES) {
        assertTrue(help.out().contains(name), name + " missing from generate --help:\n" + help.out());
      }
      Run badPreset = run("generate", "--prompt", "bag", "--cache", "turbo", "--out", dir.resolve("x.png").toString());
      assertEquals(1, badPreset.code());
      assertTrue(badPreset.err().contains("turbo") && badPreset.err().contains("quadratic-7"), badPreset.err());
      Run unknown = run("metrics", "lpips", "-i1", "a", "-i2", "b");
      assertEquals(1, unknown.code());
      assertTrue(unknown.err().contains("lpips"), unknown.err());
    } finally {
      if (old == null) {
        System.clearProperty("cachedit.home");
      } else {
        System.setProperty("cachedit.home", old);
      }
    }
  }

  @Test
  void benchWritesTableAndPlot(@TempDir Path dir) throws Exception {
    Path home = tinyHome(dir);
    System.setProperty("cachedit.home", home.toString());
    try {
      io.cachedit.fashion.FashionTestData.writeIdx(io.cachedit.fashion.FashionTestData.bands(40, 1), dir.resolve("data"),
          "t10k");
      Run r = run("bench", "--steps", "8", "--prompts", "bag,sandal", "--seeds", "0", "--n", "2", "--only",
          "F1B0 R0.24 MC5", "--data", dir.resolve("data").toString(), "--out", dir.resolve("bench").toString());
      assertEquals(0, r.code(), r.err());
      String md = Files.readString(dir.resolve("bench/bench.md"));
      assertTrue(md.contains("| uncached | 8 |"), md);
      assertTrue(md.contains("| F1B0 R0.24 MC5 +TS1 | 8 |"), md);
      assertTrue(Files.size(dir.resolve("bench/speedup-psnr.png")) > 1000);
    } finally {
      System.clearProperty("cachedit.home");
    }
  }

  @Test
  void reportOnlyWritesTheCardOfAnInterruptedRunsCheckpoint(@TempDir Path dir) throws Exception {
    Path model = tinyHome(dir).resolve(BundledModel.DEFAULT_DIR);
    Files.writeString(model.resolve("loss.csv"), """
        step,loss,lr,seconds
        50,1.5,1.0e-04,60.0
        100,0.9,2.0e-04,120.0
        150,0.7,1.5e-04,180.0
        """);
    String out = model.toString();
    Run r = run("train", "--out", out, "--steps", "200", "--checkpoint-every", "100", "--report-only", "100");
    assertEquals(0, r.code(), r.err());
    String card = Files.readString(model.resolve("README.md"));
    assertTrue(card.contains("checkpoint saved at step 100 of a run planned for 200 steps"), card);
    assertTrue(card.contains("stopped after step 150"), card);
    assertTrue(card.contains("last logged loss 0.9000"), card);
    assertTrue(Files.size(model.resolve("loss.png")) > 1000);
    assertTrue(Files.size(model.resolve("samples.png")) > 1000);

    Run notCheckpoint = run("train", "--out", out, "--steps", "200", "--checkpoint-every", "100", "--report-only", "50");
    assertEquals(1, notCheckpoint.code());
    assertTrue(notCheckpoint.err().contains("--checkpoint-every 100"), notCheckpoint.err());
    Run beyond = run("train", "--out", out, "--steps", "200", "--checkpoint-every", "100", "--report-only", "200");
    assertEquals(1, beyond.code());
    assertTrue(beyond.err().contains("checkpoint step 200 is not covered"), beyond.err());
    Files.writeString(model.resolve("loss.csv"), "step,loss,lr,seconds\n50,abc,1,2\n");
    Run broken = run("train", "--out", out, "--steps", "200", "--checkpoint-every", "100", "--report-only", "100");
    assertEquals(1, broken.code());
    assertTrue(broken.err().contains("loss.csv line 2"), broken.err());
  }
}
