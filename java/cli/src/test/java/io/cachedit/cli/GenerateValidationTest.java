package io.cachedit.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code generate}'s arguments: each bad value is one line naming the option and its range, before any work. */
class GenerateValidationTest {
  static void fails(String expected, String... args) {
    long start = System.nanoTime();
    FashionCommandsTest.Run r = FashionCommandsTest.run(args);
    assertEquals(1, r.code(), r.out() + r.err());
    String err = r.err().strip();
    assertEquals(1, err.lines().count(), "one line: " + err);
    assertTrue(err.contains(expected), err);
    assertTrue(System.nanoTime() - start < 5_000_000_000L, "failing took over 5 s: " + err);
  }

  @Test
  void badNumbersNameTheirOption(@TempDir Path dir) {
    String out = dir.resolve("x.png").toString();
    fails("--guidance NaN", "generate", "--prompt", "bag", "--guidance", "NaN", "--out", out);
    fails("--guidance Infinity", "generate", "--prompt", "bag", "--guidance", "Infinity", "--out", out);
    fails("0..100", "generate", "--prompt", "bag", "--guidance", "1e30", "--out", out);
    fails("--n 0: images must be 1..1024", "generate", "--prompt", "bag", "--n", "0", "--out", out);
    fails("--steps 0: steps must be 1..1000", "generate", "--prompt", "bag", "--steps", "0", "--out", out);
  }

  @Test
  void anUnwritableOutIsRefusedBeforeGenerating(@TempDir Path dir) throws Exception {
    fails("it is a directory", "generate", "--prompt", "bag", "--out", dir.toString());
    Path file = Files.writeString(dir.resolve("plain"), "x");
    fails("cannot create its folder", "generate", "--prompt", "bag", "--out", file.resolve("x.png").toString());
    assertFalse(Files.exists(dir.resolve("x.png")));
  }

  @Test
  void anNThatCannotFitInMemoryIsRefusedWithTheEstimate(@TempDir Path dir) {
    String out = dir.resolve("x.png").toString();
    System.setProperty("cachedit.memoryLimit", "500000000");
    try {
      fails("--n 64 needs about 1.5 GB", "generate", "--prompt", "bag", "--n", "64", "--steps", "1", "--model",
          "../../models/fashion-flux", "--out", out);
      fails("use --n 21 or fewer", "generate", "--prompt", "bag", "--n", "64", "--steps", "1", "--model",
          "../../models/fashion-flux", "--out", out);
      FashionCommandsTest.Run ok = FashionCommandsTest.run("generate", "--prompt", "bag", "--n", "4", "--steps", "1",
          "--model", "../../models/fashion-flux", "--out", out);
      assertEquals(0, ok.code(), ok.err());
    } finally {
      System.clearProperty("cachedit.memoryLimit");
    }
  }

  @Test
  void libtorchBacktracesAreCutToTheirFirstLine() {
    RuntimeException e = new RuntimeException("shape '[2, 3]' is invalid for input of size 5\nException raised from "
        + "infer_size_impl at /pytorch/aten/src/ATen/InferSize.h:69 (most recent call first):\nframe #0: c10::Error");
    assertEquals("shape '[2, 3]' is invalid for input of size 5", Main.oneLine(e, false));
    assertTrue(Main.oneLine(e, true).contains("frame #0"), "CACHEDIT_DEBUG keeps the trace");
    assertEquals("NullPointerException", Main.oneLine(new NullPointerException(), false));
    assertEquals("no such file or folder: /x/y.png", Main.oneLine(new java.io.UncheckedIOException(
        new java.nio.file.NoSuchFileException("/x/y.png")), false));
  }

  @Test
  void aShortSoakKeepsNativeHandlesFlat() {
    FashionCommandsTest.Run r = FashionCommandsTest.run("soak", "--model", "../../models/fashion-flux", "--generations",
        "25", "--warmup", "10", "--n", "1", "--steps", "9", "--max-growth", "1.0");
    assertEquals(0, r.code(), r.out() + r.err());
    assertTrue(r.out().contains("native tensor handles"), r.out());
  }
}
