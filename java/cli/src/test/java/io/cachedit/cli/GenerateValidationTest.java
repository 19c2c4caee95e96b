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
}
