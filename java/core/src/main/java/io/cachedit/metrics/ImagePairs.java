package io.cachedit.metrics;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * Which images a metric compares (cache-dit's rules, docs/fashion.md): file with file, or directory with
 * directory: images collected recursively, sorted by the trailing integer of the file name, paired
 * by index, and only pairs with identical base names kept.
 */
public final class ImagePairs {
  private ImagePairs() {}

  static final Pattern TRAILING_INT = Pattern.compile("(\\d+)(?!.*\\d)");

  /** A compared pair. */
  public record Pair(Path first, Path second) {}

  public static boolean isImage(Path p) {
    String n = p.getFileName().toString().toLowerCase(Locale.ROOT);
    return Files.isRegularFile(p) && (n.endsWith(".png") || n.endsWith(".jpg") || n.endsWith(".jpeg")
        || n.endsWith(".bmp"));
  }

  /** Images under {@code path} (itself if a file), sorted by trailing integer, then name. */
  public static List<Path> collect(Path path) {
    if (!Files.exists(path)) {
      throw new IllegalArgumentException(path + " does not exist");
    }
    if (Files.isRegularFile(path)) {
      if (!isImage(path)) {
        throw new IllegalArgumentException(path + " is not a PNG/JPEG/BMP image");
      }
      return List.of(path);
    }
    List<Path> out = new ArrayList<>();
    try (Stream<Path> s = Files.walk(path)) {
      s.filter(ImagePairs::isImage).forEach(out::add);
    } catch (IOException e) {
      throw new UncheckedIOException("cannot list " + path, e);
    }
    out.sort(Comparator.comparingLong(ImagePairs::trailingInt).thenComparing(p -> p.getFileName().toString()));
    if (out.isEmpty()) {
      throw new IllegalArgumentException("no images (png, jpg, bmp) under " + path);
    }
    return out;
  }

  static long trailingInt(Path p) {
    String name = p.getFileName().toString();
    int dot = name.lastIndexOf('.');
    Matcher m = TRAILING_INT.matcher(dot > 0 ? name.substring(0, dot) : name);
    if (!m.find()) {
      return Long.MAX_VALUE;
    }
    try {
      return Long.parseLong(m.group(1));
    } catch (NumberFormatException e) {
      return Long.MAX_VALUE;
    }
  }

  /** Pairs of {@code a} and {@code b} (both files, or both directories). */
  public static List<Pair> pair(Path a, Path b) {
    if (Files.isRegularFile(a) != Files.isRegularFile(b)) {
      throw new IllegalArgumentException("-i1 and -i2 must both be files or both be directories");
    }
    List<Path> left = collect(a);
    List<Path> right = collect(b);
    if (Files.isRegularFile(a)) {
      return List.of(new Pair(left.get(0), right.get(0)));
    }
    List<Pair> out = new ArrayList<>();
    for (int i = 0; i < Math.min(left.size(), right.size()); i++) {
      if (left.get(i).getFileName().equals(right.get(i).getFileName())) {
        out.add(new Pair(left.get(i), right.get(i)));
      }
    }
    if (out.isEmpty()) {
      throw new IllegalArgumentException("no image pairs with identical names between " + a + " and " + b);
    }
    return out;
  }
}
