package io.cachedit.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.awt.image.BufferedImage;
import java.nio.file.Files;
import java.nio.file.Path;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code --quantize} on the bundled model: alone, with caching, under CFG and tensor parallelism, and bad values. */
class QuantizeCommandsTest {
  static final Path BUNDLED = Path.of("../../models/fashion-flux");

  static FashionCommandsTest.Run run(String... args) {
    return FashionCommandsTest.run(args);
  }

  @Test
  void generateQuantisedComparesWithTheFp32Model(@TempDir Path dir) throws Exception {
    FashionCommandsTest.Run r = run("generate", "--prompt", "sneaker", "--n", "4", "--steps", "8", "--quantize",
        "int8_per_row", "--cache", "dbcache", "--compare", "--json", "--model", BUNDLED.toString(), "--out",
        dir.resolve("q.png").toString());
    assertEquals(0, r.code(), r.out() + r.err());
    JsonNode j = new ObjectMapper().readTree(r.out().lines().filter(l -> l.startsWith("{")).findFirst().orElseThrow());
    assertEquals("int8_per_row", j.get("quantize").asText());
    assertEquals(104, j.get("quantized_layers").asInt());
    assertTrue(j.get("linear_weight_bytes_after").asDouble() < 0.3 * j.get("linear_weight_bytes_before").asDouble());
    assertTrue(j.get("psnr").asDouble() > 25, "int8 + dbcache against fp32 uncached: " + j);
    assertTrue(r.err().contains("quantised (int8_per_row)"), r.err());
  }

  @Test
  void badQuantizeValuesAreOneClearLine(@TempDir Path dir) {
    String out = dir.resolve("x.png").toString();
    FashionCommandsTest.Run unknown = run("generate", "--prompt", "bag", "--quantize", "int3", "--out", out);
    assertNotEquals(0, unknown.code());
    assertTrue(unknown.err().contains("int3") && unknown.err().contains("int8_per_row"), unknown.err());
    FashionCommandsTest.Run group = run("generate", "--prompt", "bag", "--quantize", "int4_weight_only:48", "--out",
        out);
    assertNotEquals(0, group.code());
    assertTrue(group.err().contains("group_size") && group.err().contains("48"), group.err());
    FashionCommandsTest.Run notInt4 = run("generate", "--prompt", "bag", "--quantize", "int8_per_row:32", "--out",
        out);
    assertNotEquals(0, notInt4.code());
    assertTrue(notInt4.err().contains("only int4_weight_only takes a group size"), notInt4.err());
  }

  /**
   * Under CFG parallelism each rank runs one branch: the quantised kernel computes every row as alone, but
   * the dense layers' last-bit batch differences can move an activation across a quantisation step, so the
   * images are close to one process's, not byte-equal (they are for the dense model). Tensor parallelism
   * quantises each rank's shard (row-split layers get their own scales): close as well.
   */
  @Test
  void quantisedUnderCfgAndTensorParallelism(@TempDir Path dir) throws Exception {
    String[] common = {"generate", "--prompt", "bag", "--n", "2", "--steps", "6", "--seed", "5", "--quantize",
        "int8_per_row", "--model", BUNDLED.toString()};
    FashionCommandsTest.Run single = run(concat(common, "--out", dir.resolve("single.png").toString()));
    assertEquals(0, single.code(), single.out() + single.err());
    byte[] expected = Files.readAllBytes(dir.resolve("single.png"));
    FashionCommandsTest.Run cfg = run(concat(concat(new String[] {"launch", "--nproc", "2", "--"}, common),
        "--parallel", "cfg=2", "--out", dir.resolve("cfg.png").toString()));
    assertEquals(0, cfg.code(), cfg.out() + cfg.err());
    assertTrue(expected.length > 0);
    assertTrue(meanAbsDiff(dir.resolve("single.png"), dir.resolve("cfg.png")) < 3.0,
        "cfg=2 quantised images far from one process's");
    FashionCommandsTest.Run tp = run(concat(concat(new String[] {"launch", "--nproc", "2", "--"}, common),
        "--parallel", "tp=2", "--out", dir.resolve("tp.png").toString()));
    assertEquals(0, tp.code(), tp.out() + tp.err());
    assertTrue(meanAbsDiff(dir.resolve("single.png"), dir.resolve("tp.png")) < 3.0,
        "tp=2 quantised images far from one process's");
  }

  static double meanAbsDiff(Path a, Path b) throws Exception {
    BufferedImage x = ImageIO.read(a.toFile());
    BufferedImage y = ImageIO.read(b.toFile());
    assertEquals(x.getWidth(), y.getWidth());
    double sum = 0;
    for (int i = 0; i < x.getWidth(); i++) {
      for (int j = 0; j < x.getHeight(); j++) {
        sum += Math.abs((x.getRGB(i, j) & 0xFF) - (y.getRGB(i, j) & 0xFF));
      }
    }
    return sum / ((double) x.getWidth() * x.getHeight());
  }

  private static String[] concat(String[] a, String... b) {
    String[] all = java.util.Arrays.copyOf(a, a.length + b.length);
    System.arraycopy(b, 0, all, a.length, b.length);
    return all;
  }
}
