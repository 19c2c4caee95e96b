package io.cachedit.image;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** PNG output: written whole or not at all, and bad paths named before any work. */
class ImagesTest {
  static Images.Image8 gray(int value) {
    int[] data = new int[4 * 3];
    java.util.Arrays.fill(data, value);
    return new Images.Image8(4, 3, 1, data);
  }

  @Test
  void pngReplacesTheOldFileWholeAndLeavesNoTemporaries(@TempDir Path dir) throws Exception {
    Path png = dir.resolve("sub").resolve("a.png");
    Images.writePng(gray(10), png);
    Images.writePng(gray(200), png);
    assertArrayEquals(gray(200).data(), Images.readImage(png).data());
    try (Stream<Path> files = Files.list(png.getParent())) {
      assertEquals(1, files.count(), "temporary files left beside the PNG");
    }
  }

  @Test
  void unwritablePathsAreNamedBeforeAnyWork(@TempDir Path dir) throws Exception {
    UncheckedIOException folder = assertThrows(UncheckedIOException.class, () -> Images.checkWritable(dir));
    assertTrue(folder.getMessage().startsWith("cannot write " + dir) && folder.getMessage().contains("directory"),
        folder.getMessage());
    Path file = Files.writeString(dir.resolve("file"), "x");
    UncheckedIOException under = assertThrows(UncheckedIOException.class,
        () -> Images.checkWritable(file.resolve("out.png")));
    assertTrue(under.getMessage().contains("cannot create its folder"), under.getMessage());
  }
}
