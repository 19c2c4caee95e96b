package io.cachedit.cli;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;
import picocli.CommandLine.Model.OptionSpec;

/**
 * Bad command lines, at least 200: a value of the wrong type for every typed option of every command
 * (found by introspection, so new options are covered), and values of the right type that are out of
 * range, unknown, missing or pointing at the wrong kind of file. Each must fail with exactly one line
 * starting with {@code error:}, naming the option, quickly; none may print a backtrace.
 */
class CliFuzzTest {
  static final String MODEL = "../../models/fashion-flux";

  record Case(List<String> args, String expected) {}

  static List<Case> typed() {
    List<Case> cases = new ArrayList<>();
    CommandLine root = new CommandLine(new Main());
    for (var sub : root.getSubcommands().entrySet()) {
      for (OptionSpec o : sub.getValue().getCommandSpec().options()) {
        Class<?> t = o.type();
        boolean numeric = t == int.class || t == long.class || t == double.class || t == Integer.class
            || t == Long.class || t == Double.class;
        if (!numeric || o.arity().max() < 1) {
          continue;
        }
        for (String bad : new String[] {"abc", "12x", "", "0x1G", "99999999999999999999999"}) {
          if (bad.equals("99999999999999999999999") && (t == double.class || t == Double.class)) {
            continue;  // a huge double is a number; its range check is a semantic case
          }
          cases.add(new Case(List.of(sub.getKey(), o.longestName(), bad), o.longestName()));
        }
      }
    }
    return cases;
  }

  static List<Case> semantic(Path dir) throws Exception {
    String out = dir.resolve("x.png").toString();
    Path folder = Files.createDirectories(dir.resolve("folder"));
    Path plain = Files.writeString(dir.resolve("plain.txt"), "not a config");
    Path yaml = Files.writeString(dir.resolve("bad.yaml"), "cache_config:\n  residual_diff_threshold: -1\n");
    Path unknown = Files.writeString(dir.resolve("unknown.yaml"), "cache_config:\n  colour: red\n");
    Path deep = Files.writeString(dir.resolve("deep.yaml"), "a: " + "[".repeat(3000) + "]".repeat(3000) + "\n");
    List<Case> c = new ArrayList<>();
    String[][] generate = {
        {"--n", "0", "--n"}, {"--n", "-3", "--n"}, {"--n", "1025", "--n"}, {"--steps", "0", "--steps"},
        {"--steps", "1001", "--steps"}, {"--steps", "-1", "--steps"}, {"--guidance", "-1", "--guidance"},
        {"--guidance", "NaN", "--guidance"}, {"--guidance", "Infinity", "--guidance"}, {"--guidance", "1e30",
            "--guidance"}, {"--guidance", "100.5", "--guidance"}, {"--cache", "fastest", "cache"},
        {"--cache", "", "cache"}, {"--cache-config", "/nonexistent/c.yaml", "/nonexistent/c.yaml"},
        {"--cache-config", folder.toString(), folder.toString()}, {"--cache-config", yaml.toString(),
            "residual_diff_threshold"}, {"--cache-config", unknown.toString(), "colour"},
        {"--cache-config", deep.toString(), "deep.yaml"}, {"--quantize", "int3", "int3"},
        {"--quantize", "int4:7", "int4"}, {"--parallel", "bogus=2", "bogus"}, {"--compute", "fp8", "compute"}, {"--parallel", "ulysses=0", "ulysses"},
        {"--model", "/nonexistent/model", "/nonexistent/model"}, {"--model", plain.toString(), "plain.txt"}};
    for (String[] g : generate) {
      List<String> args = new ArrayList<>(List.of("generate", "--prompt", "bag", "--out", out, g[0], g[1]));
      if (!g[0].equals("--model")) {
        args.addAll(List.of("--model", MODEL));
      }
      c.add(new Case(args, g[2]));
    }
    c.add(new Case(List.of("generate", "--prompt", "cat", "--model", MODEL, "--out", out), "cat"));
    c.add(new Case(List.of("generate", "--prompt", "bag", "--model", MODEL, "--out", folder.toString()),
        folder.toString()));
    c.add(new Case(List.of("generate", "--prompt", "bag", "--model", MODEL, "--out", plain.resolve("x.png").toString()),
        "plain.txt"));
    c.add(new Case(List.of("generate", "--prompt", "bag", "--model", MODEL, "--out", out, "--save-images",
        plain.toString()), "--save-images"));
    c.add(new Case(List.of("generate", "--prompt", "bag", "--model", MODEL, "--out", out, "--compare"), "--compare"));
    c.add(new Case(List.of("generate", "--prompt", "bag", "--model", MODEL, "--out", out, "--compute", "bf16",
        "--quantize", "int8_per_row"), "--compute"));
    c.add(new Case(List.of("generate", "--prompt", "bag", "--model", MODEL, "--out", out, "--cache", "dbcache",
        "--cache-config", yaml.toString()), "mutually exclusive"));
    String[][] serve = {{"--max-queue", "0"}, {"--max-queue", "-1"}, {"--max-batch", "0"}, {"--max-batch", "257"},
        {"--port", "70000"}, {"--port", "-1"}, {"--workers", "0"}, {"--workers", "65"}, {"--max-body-bytes", "10"},
        {"--batch-window-ms", "-1"}, {"--batch-window-ms", "99999"}, {"--shutdown-grace-s", "-1"},
        {"--jobs-kept", "0"}, {"--cache", "fastest"}};
    for (String[] s : serve) {
      c.add(new Case(List.of("serve", "--model", MODEL, s[0], s[1]), s[0].equals("--cache") ? "preset" : s[0]));
    }
    String[][] loadtest = {{"--clients", "0"}, {"--requests", "0"}, {"--distinct", "-2"}, {"--steps", "0"},
        {"--rounds", "0"}, {"--mix", "bogus"}};
    for (String[] l : loadtest) {
      c.add(new Case(List.of("loadtest", "--model", MODEL, l[0], l[1]), l[0].equals("--mix") ? "--mix" : ">= 1"));
    }
    c.add(new Case(List.of("metrics", "psnr", "-i1", "/nonexistent/a.png", "-i2", "/nonexistent/b.png"),
        "/nonexistent"));
    c.add(new Case(List.of("metrics", "bogus", "-i1", out, "-i2", out), "bogus"));
    c.add(new Case(List.of("forward", "--model", "/nonexistent/m", "--inputs", plain.toString(), "--out", out),
        "/nonexistent/m"));
    c.add(new Case(List.of("forward", "--model", MODEL + "/transformer", "--inputs", plain.toString(), "--out",
        dir.resolve("o.safetensors").toString()), "plain.txt"));
    for (String[] t : new String[][] {{"--steps", "0"}, {"--batch", "-1"}, {"--lr", "0"}, {"--lr", "NaN"},
        {"--log-every", "0"}, {"--checkpoint-every", "0"}}) {
      c.add(new Case(List.of("train", t[0], t[1], "--out", dir.resolve("t").toString()), t[0]));
    }
    c.add(new Case(List.of("nonsense-command"), "nonsense-command"));
    c.add(new Case(List.of("generate", "--bogus-flag", "1", "--prompt", "bag", "--out", out), "--bogus-flag"));
    return c;
  }

  @Test
  void everyBadCommandLineFailsWithOneLineNamingTheOption(@TempDir Path dir) throws Exception {
    List<Case> cases = new ArrayList<>(typed());
    cases.addAll(semantic(dir));
    List<String> failures = new ArrayList<>();
    long[] times = new long[cases.size()];
    for (int i = 0; i < cases.size(); i++) {
      Case c = cases.get(i);
      long t0 = System.nanoTime();
      FashionCommandsTest.Run r = FashionCommandsTest.run(c.args().toArray(String[]::new));
      times[i] = System.nanoTime() - t0;
      String err = r.err().strip();
      String problem = r.code() == 0 ? "exit 0"
          : err.lines().count() != 1 ? (err.lines().count() + " lines")
          : !err.startsWith("error: ") ? "no error: prefix"
          : err.contains("Exception raised from") || err.contains("\tat ") ? "a backtrace"
          : !err.contains(c.expected()) ? "does not name " + c.expected()
          : times[i] > 30_000_000_000L ? "took " + times[i] / 1e9 + " s" : null;
      if (problem != null) {
        failures.add(String.join(" ", c.args()) + " -> " + problem + ": " + err);
      }
    }
    Arrays.sort(times);
    double median = times[times.length / 2] / 1e9;
    System.out.printf("cli fuzz: %d command lines, median time to fail %.3f s%n", cases.size(), median);
    assertTrue(cases.size() >= 200, "at least 200 command lines: " + cases.size());
    assertTrue(failures.isEmpty(), failures.size() + " failed:\n" + String.join("\n", failures));
    assertTrue(median < 2, "median " + median + " s");
  }
}
