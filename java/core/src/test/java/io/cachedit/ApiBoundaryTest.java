package io.cachedit;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.lang.reflect.Constructor;
import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.lang.reflect.ParameterizedType;
import java.lang.reflect.Type;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * The library artifact stays a library. Instead of a JPMS module descriptor, a check that holds on the
 * class path, where cachedit's users (and JavaCPP's native loading) run it: the packages named
 * {@link #INTERNAL} are cachedit's own business, so no public signature of another package mentions
 * them and no other module uses them; and the command line's and the bundled model's dependencies are
 * not on the library's class path. (The jar's {@code Automatic-Module-Name} is {@code io.cachedit}.)
 */
class ApiBoundaryTest {
  /** Packages public for cachedit's own packages only, not for users. */
  static final Set<String> INTERNAL = Set.of("io.cachedit.cache.engine");

  @Test
  void otherModulesUseOnlyTheExportedPackages() throws IOException {
    List<String> violations = new ArrayList<>();
    for (Path root : List.of(Path.of("../fashion/src"), Path.of("../cli/src"), Path.of("../../bench/src"))) {
      try (Stream<Path> files = Files.walk(root)) {
        for (Path p : (Iterable<Path>) files.filter(f -> f.toString().endsWith(".java"))::iterator) {
          String src = Files.readString(p);
          for (String internal : INTERNAL) {
            if (src.contains(internal + ".")) {
              violations.add(p + " uses " + internal);
            }
          }
        }
      }
    }
    assertTrue(violations.isEmpty(), String.join("\n", violations));
  }

  @Test
  void publicSignaturesOfExportedPackagesDoNotMentionInternalTypes() throws Exception {
    Path classes = Path.of("target/classes");
    List<String> violations = new ArrayList<>();
    int checked = 0;
    try (Stream<Path> files = Files.walk(classes)) {
      for (Path p : (Iterable<Path>) files.filter(f -> f.toString().endsWith(".class"))::iterator) {
        String name = classes.relativize(p).toString().replace('/', '.').replaceAll("\\.class$", "");
        String pkg = name.substring(0, name.lastIndexOf('.'));
        if (INTERNAL.contains(pkg) || !pkg.startsWith("io.cachedit")) {
          continue;
        }
        Class<?> c = Class.forName(name, false, getClass().getClassLoader());
        if (!Modifier.isPublic(c.getModifiers()) || c.isSynthetic()) {
          continue;
        }
        checked++;
        for (Method m : c.getDeclaredMethods()) {
          if (exposed(m.getModifiers()) && !m.isSynthetic()) {
            check(violations, c, m.getName() + " returns", m.getGenericReturnType());
            for (Type t : m.getGenericParameterTypes()) {
              check(violations, c, m.getName() + " takes", t);
            }
          }
        }
        for (Constructor<?> k : c.getDeclaredConstructors()) {
          if (exposed(k.getModifiers())) {
            for (Type t : k.getGenericParameterTypes()) {
              check(violations, c, "constructor takes", t);
            }
          }
        }
        for (Field f : c.getDeclaredFields()) {
          if (exposed(f.getModifiers())) {
            check(violations, c, "field " + f.getName(), f.getGenericType());
          }
        }
      }
    }
    assertTrue(checked > 50, "checked only " + checked + " public classes");
    assertTrue(violations.isEmpty(), String.join("\n", violations));
  }

  @Test
  void theCommandLinesDependenciesAreNotTheLibrarys() {
    for (String cls : List.of("picocli.CommandLine", "org.jfree.chart.JFreeChart")) {
      assertThrows(ClassNotFoundException.class, () -> Class.forName(cls, false, getClass().getClassLoader()),
          cls + " is on the library's class path");
    }
  }

  private static boolean exposed(int modifiers) {
    return Modifier.isPublic(modifiers) || Modifier.isProtected(modifiers);
  }

  private static void check(List<String> violations, Class<?> owner, String what, Type type) {
    if (type instanceof Class<?> c) {
      while (c.isArray()) {
        c = c.getComponentType();
      }
      if (c.getPackage() != null && INTERNAL.contains(c.getPackageName())) {
        violations.add(owner.getName() + "." + what + " " + c.getName());
      }
    } else if (type instanceof ParameterizedType pt) {
      check(violations, owner, what, pt.getRawType());
      for (Type a : pt.getActualTypeArguments()) {
        check(violations, owner, what, a);
      }
    }
  }
}
