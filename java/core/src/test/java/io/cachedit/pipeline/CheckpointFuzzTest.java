package io.cachedit.pipeline;

import static org.junit.jupiter.api.Assertions.assertTrue;

import io.cachedit.error.CacheDitException;
import io.cachedit.models.TinyConfigs;
import io.cachedit.models.common.DiffusersTransformer;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Mutated checkpoints of all seven families (config.json values, types, truncations and byte flips;
 * safetensors truncations, header lengths, header bytes, appended bytes): each either loads or fails
 * with one {@link CacheDitException} line naming the file or the key, quickly; nothing else is allowed.
 * {@code -Dcachedit.fuzz.scale=N} multiplies the number of cases (docs/reliability.md).
 */
class CheckpointFuzzTest {
  private static final int SCALE = Integer.getInteger("cachedit.fuzz.scale", 1);
  private static final Map<String, String> FAMILIES = Map.of("flux", TinyConfigs.flux(true), "sd3", TinyConfigs.sd3(true),
      "wan", TinyConfigs.wan(true), "qwen", TinyConfigs.qwenImage(), "zimage", TinyConfigs.zImage(), "dit",
      TinyConfigs.dit(), "pixart", TinyConfigs.pixart(true));
  private static final String[] BAD_NUMBERS = {"0", "-1", "1", "2147483647", "-2147483648", "99999999999", "1.5",
      "\"8\"", "null", "true", "[]", "{}", "[2147483647]", "[-4]", "[0, 0]", "[1, 2, 3, 4, 5]", "1e400"};
  private static final Pattern VALUE = Pattern.compile("\"([a-z_]+)\": (\\[[^\\]]*\\]|\"[^\"]*\"|[^,}\\s]+)");

  record Outcome(String what, boolean loaded, String error, long nanos) {}

  @Test
  void everyMutatedCheckpointLoadsOrFailsWithOneLineNamingTheFileOrKey(@TempDir Path tmp) throws Exception {
    Random rnd = new Random(42);
    List<Outcome> outcomes = new ArrayList<>();
    List<String> failures = new ArrayList<>();
    for (Map.Entry<String, String> fam : new java.util.TreeMap<>(FAMILIES).entrySet()) {
      Path good = tmp.resolve(fam.getKey() + "-good");
      try (PointerScope s = new PointerScope();
           DiffusersTransformer m = ModelRegistry.defaults().randomTransformer(fam.getValue(), 3, ScalarType.Float)) {
        ModelRegistry.save(m, good);
      }
      String config = Files.readString(good.resolve("config.json"));
      byte[] weights = Files.readAllBytes(good.resolve("diffusion_pytorch_model.safetensors"));
      List<String[]> values = new ArrayList<>();
      Matcher mm = VALUE.matcher(config);
      while (mm.find()) {
        values.add(new String[] {mm.group(1), mm.group(0)});
      }
      int cases = 150 * SCALE;
      for (int c = 0; c < cases; c++) {
        Path dir = tmp.resolve(fam.getKey() + "-" + c);
        Files.createDirectories(dir);
        String cfg = config;
        byte[] st = weights;
        String what;
        switch (c % 6) {
          case 0, 1 -> {  // a value replaced by a hostile one
            String[] kv = values.get(rnd.nextInt(values.size()));
            String v = BAD_NUMBERS[rnd.nextInt(BAD_NUMBERS.length)];
            cfg = config.replace(kv[1], "\"" + kv[0] + "\": " + v);
            what = "config " + kv[0] + " = " + v;
          }
          case 2 -> {  // config text truncated or a byte flipped
            if (rnd.nextBoolean()) {
              cfg = config.substring(0, rnd.nextInt(config.length()));
              what = "config truncated at " + cfg.length();
            } else {
              char[] ch = config.toCharArray();
              int at = rnd.nextInt(ch.length);
              String pool = "{}[]\",:09-aZ \u00e9\u0000";
              ch[at] = pool.charAt(rnd.nextInt(pool.length()));
              cfg = new String(ch);
              what = "config char " + at + " -> " + (int) ch[at];
            }
          }
          case 3 -> {  // weights truncated
            st = Arrays.copyOf(weights, rnd.nextInt(weights.length));
            what = "weights truncated at " + st.length;
          }
          case 4 -> {  // header length changed, or header bytes flipped
            st = weights.clone();
            ByteBuffer b = ByteBuffer.wrap(st).order(ByteOrder.LITTLE_ENDIAN);
            long len = b.getLong(0);
            if (rnd.nextBoolean()) {
              long[] deltas = {-1, 1, -8, 8, -len, Long.MAX_VALUE - len, 1 << 30};
              long d = deltas[rnd.nextInt(deltas.length)];
              b.putLong(0, len + d);
              what = "header length " + len + " + " + d;
            } else {
              int at = 8 + rnd.nextInt((int) len);
              st[at] = (byte) rnd.nextInt(256);
              what = "header byte " + at + " -> " + (st[at] & 0xff);
            }
          }
          default -> {  // bytes appended, or a tensor's data overwritten by NaN bytes
            if (rnd.nextBoolean()) {
              st = Arrays.copyOf(weights, weights.length + 1 + rnd.nextInt(64));
              what = "bytes appended";
            } else {
              st = weights.clone();
              int len = (int) ByteBuffer.wrap(st).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
              int at = 8 + len + 4 * rnd.nextInt((st.length - 8 - len) / 4);
              ByteBuffer.wrap(st).order(ByteOrder.LITTLE_ENDIAN).putFloat(at, Float.NaN);
              what = "NaN written at " + at;
            }
          }
        }
        Files.writeString(dir.resolve("config.json"), cfg, StandardCharsets.UTF_8);
        Files.write(dir.resolve("diffusion_pytorch_model.safetensors"), st);
        long t0 = System.nanoTime();
        Outcome o;
        try (PointerScope s = new PointerScope();
             DiffusersTransformer m = ModelRegistry.defaults().loadTransformer(dir, ScalarType.Float)) {
          o = new Outcome(what, true, null, System.nanoTime() - t0);
        } catch (CacheDitException e) {
          o = new Outcome(what, false, e.getMessage(), System.nanoTime() - t0);
          boolean names = e.getMessage().contains(dir.toString()) || e.getMessage().contains(fam.getKey())
              || e.getMessage().contains("config.json") || e.getMessage().contains(".safetensors");
          if (e.getMessage().contains("\n") || !names) {
            failures.add(fam.getKey() + " / " + what + ": " + e.getMessage());
          }
        } catch (RuntimeException | Error e) {
          o = new Outcome(what, false, e.toString(), System.nanoTime() - t0);
          failures.add(fam.getKey() + " / " + what + ": not a cachedit error: " + e);
        }
        if (o.nanos() > 10_000_000_000L) {
          failures.add(fam.getKey() + " / " + what + ": took " + o.nanos() / 1e9 + " s");
        }
        outcomes.add(o);
        try (var files = Files.list(dir)) {  // keep the disk small
          for (Path f : (Iterable<Path>) files::iterator) {
            Files.delete(f);
          }
        }
        Files.delete(dir);
      }
    }
    long[] times = outcomes.stream().filter(o -> !o.loaded()).mapToLong(Outcome::nanos).sorted().toArray();
    long failed = times.length;
    double median = times.length == 0 ? 0 : times[times.length / 2] / 1e6;
    System.out.printf("checkpoint fuzz: %d files, %d refused, %d loaded, median time to fail %.1f ms%n",
        outcomes.size(), failed, outcomes.size() - failed, median);
    assertTrue(outcomes.size() >= 1000, "at least 1000 files: " + outcomes.size());
    java.util.Map<String, String> byKind = new java.util.TreeMap<>();  // one example of each kind of failure
    for (String f : failures) {
      byKind.putIfAbsent(f.replaceAll("[0-9]+", "#").replaceAll("/tmp/\\S+", "").substring(0,
          Math.min(90, f.replaceAll("[0-9]+", "#").replaceAll("/tmp/\\S+", "").length())), f);
    }
    assertTrue(failures.isEmpty(), failures.size() + " bad outcomes, one of each kind:\n"
        + String.join("\n", byKind.values()));
    assertTrue(median < 2000, "median time to fail " + median + " ms");
    assertTrue(failed > outcomes.size() / 2, "most mutations are errors: " + failed);
  }
}
