package io.cachedit;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * One-way package dependencies (STYLE.md section 3): every reference from one cachedit package to
 * another, by import or fully qualified name, must be allowed by this table. Models never see the
 * engine; the engine never sees adapters or the facade; kernels see only JavaCPP and libtorch.
 */
class ArchitectureTest {
  /** package -> packages it may use (besides itself); "models.*" = any model package. */
  private static final Map<String, List<String>> ALLOWED = Map.ofEntries(
      Map.entry("io.cachedit", List.of("*")),
      Map.entry("io.cachedit.cli", List.of("*")),
      Map.entry("io.cachedit.server", List.of("io.cachedit", "io.cachedit.cache", "io.cachedit.fashion",
          "io.cachedit.image", "io.cachedit.pipeline", "io.cachedit.quant", "io.cachedit.kernels", "io.cachedit.error")),
      Map.entry("io.cachedit.diffusers", List.of("io.cachedit.diffusers.text", "io.cachedit.models.*",
          "io.cachedit.pipeline", "io.cachedit.image", "io.cachedit.io", "io.cachedit.kernels", "io.cachedit.error")),
      Map.entry("io.cachedit.diffusers.text", List.of("io.cachedit.error")),
      Map.entry("io.cachedit.adapter", List.of("io.cachedit.cache", "io.cachedit.models.*", "io.cachedit.pipeline",
          "io.cachedit.kernels")),
      Map.entry("io.cachedit.pipeline", List.of("io.cachedit.models.*", "io.cachedit.kernels", "io.cachedit.io",
          "io.cachedit.quant")),
      Map.entry("io.cachedit.cache", List.of("io.cachedit.models.common", "io.cachedit.kernels",
          "io.cachedit.parallel", "io.cachedit.quant")),
      Map.entry("io.cachedit.cache.engine", List.of("io.cachedit.cache", "io.cachedit.models.common",
          "io.cachedit.kernels", "io.cachedit.parallel")),
      Map.entry("io.cachedit.bench", List.of("*")),
      Map.entry("io.cachedit.parallel", List.of("io.cachedit.models.common", "io.cachedit.kernels")),
      Map.entry("io.cachedit.quant", List.of("io.cachedit.models.common", "io.cachedit.kernels", "io.cachedit.io")),
      Map.entry("io.cachedit.models.common", List.of("io.cachedit.io", "io.cachedit.kernels")),
      Map.entry("io.cachedit.io", List.of("io.cachedit.kernels")),
      Map.entry("io.cachedit.metrics", List.of("io.cachedit.image", "io.cachedit.kernels")),
      Map.entry("io.cachedit.image", List.of()),
      Map.entry("io.cachedit.fashion", List.of("io.cachedit", "io.cachedit.cache", "io.cachedit.models.*",
          "io.cachedit.pipeline", "io.cachedit.io", "io.cachedit.kernels", "io.cachedit.image", "io.cachedit.metrics")),
      Map.entry("io.cachedit.kernels", List.of()),
      Map.entry("io.cachedit.error", List.of()));

  private static final Pattern PACKAGE = Pattern.compile("^package ([\\w.]+);", Pattern.MULTILINE);
  private static final Pattern REFERENCE = Pattern.compile("\\bio\\.cachedit(\\.[a-z][a-z0-9_]*)*\\.[A-Z]\\w*");

  /** The sources of every module: this one (java/core) and its siblings, and the benchmarks. */
  static List<Path> sourceRoots() {
    return List.of(Path.of("src/main/java"), Path.of("../fashion/src/main/java"), Path.of("../cli/src/main/java"),
        Path.of("../server/src/main/java"), Path.of("../diffusers/src/main/java"), Path.of("../../bench/src/main/java"));
  }

  @Test
  void packagesDependOneWay() throws IOException {
    List<String> violations = new ArrayList<>();
    int files = 0;
    for (Path root : sourceRoots()) {
      assertTrue(Files.isDirectory(root), "missing source root " + root.toAbsolutePath());
      try (Stream<Path> paths = Files.walk(root)) {
        for (Path p : (Iterable<Path>) paths.filter(f -> f.toString().endsWith(".java"))::iterator) {
          files++;
          violations.addAll(violations(p, Files.readString(p)));
        }
      }
    }
    assertTrue(files > 20, "scanned only " + files + " files");
    assertTrue(violations.isEmpty(), "forbidden dependencies:\n" + String.join("\n", violations));
  }

  /**
   * Code and docs explain the behaviour in our words and cite docs/algorithms.md, not the reference's
   * spec (not part of the product); every cited section exists.
   */
  @Test
  void codeAndDocsCiteOurAlgorithmsPage() throws IOException {
    Path docs = Path.of("../../docs");
    String algorithms = Files.readString(docs.resolve("algorithms.md"));
    java.util.Set<String> sections = new java.util.TreeSet<>();
    Matcher h = Pattern.compile("^#{2,3} (\\d+(?:\\.\\d+)?)\\.? ", Pattern.MULTILINE).matcher(algorithms);
    while (h.find()) {
      sections.add(h.group(1));
    }
    assertTrue(sections.containsAll(List.of("1.2", "3.4", "3.5", "6.3", "8.3")), sections.toString());
    Pattern spec = Pattern.compile("\\bSPEC\\b");
    Pattern cite = Pattern.compile("docs/algorithms\\.md sections? (\\d+(?:\\.\\d+)?)");
    List<Path> roots = new ArrayList<>(sourceRoots());
    roots.addAll(List.of(Path.of("src/test/java"), Path.of("../fashion/src/test/java"), Path.of("../cli/src/test/java"), Path.of("../server/src/test/java"),
        Path.of("../diffusers/src/test/java"), docs));
    List<String> problems = new ArrayList<>();
    for (Path root : roots) {
      try (Stream<Path> paths = Files.walk(root)) {
        for (Path p : (Iterable<Path>) paths.filter(f -> f.toString().endsWith(".java")
            || f.toString().endsWith(".md"))::iterator) {
          if (p.getFileName().toString().equals("ArchitectureTest.java")) {
            continue;  // this test names what it looks for
          }
          String text = Files.readString(p);
          if (spec.matcher(text).find()) {
            problems.add(p + " cites SPEC");
          }
          Matcher c = cite.matcher(text);
          while (c.find()) {
            if (!sections.contains(c.group(1))) {
              problems.add(p + " cites docs/algorithms.md section " + c.group(1) + ", which does not exist");
            }
          }
        }
      }
    }
    for (Path readme : List.of(Path.of("../../README.md"), Path.of("../../bench/README.md"))) {
      if (spec.matcher(Files.readString(readme)).find()) {
        problems.add(readme + " cites SPEC");
      }
    }
    assertTrue(problems.isEmpty(), String.join("\n", problems));
  }

  private static List<String> violations(Path p, String src) {
    Matcher pm = PACKAGE.matcher(src);
    if (!pm.find()) {
      return List.of(p + ": no package");
    }
    String pkg = pm.group(1);
    List<String> allowed = rulesFor(pkg);
    List<String> out = new ArrayList<>();
    Matcher rm = REFERENCE.matcher(src);
    while (rm.find()) {
      String ref = rm.group();
      String refPkg = ref.substring(0, ref.lastIndexOf('.'));
      if (!refPkg.equals(pkg) && !permitted(refPkg, allowed, pkg)) {
        out.add(p + ": " + pkg + " -> " + ref);
      }
    }
    return out;
  }

  private static List<String> rulesFor(String pkg) {
    if (ALLOWED.containsKey(pkg)) {
      return ALLOWED.get(pkg);
    }
    if (pkg.startsWith("io.cachedit.models.")) {
      return List.of("io.cachedit.models.common", "io.cachedit.io", "io.cachedit.kernels");
    }
    for (Map.Entry<String, List<String>> e : ALLOWED.entrySet()) {
      if (!e.getKey().equals("io.cachedit") && pkg.startsWith(e.getKey() + ".")) {
        return e.getValue();
      }
    }
    throw new AssertionError("package " + pkg + " has no dependency rule; add it to ArchitectureTest.ALLOWED");
  }

  private static boolean permitted(String refPkg, List<String> allowed, String pkg) {
    if (refPkg.equals("io.cachedit.error")) {
      return true;  // the exception hierarchy depends on nothing and is everyone's
    }
    for (String a : allowed) {
      if (a.equals("*")) {
        return true;
      }
      if (a.equals("io.cachedit.models.*") ? refPkg.startsWith("io.cachedit.models.") : refPkg.equals(a)) {
        return true;
      }
    }
    return false;
  }
}
