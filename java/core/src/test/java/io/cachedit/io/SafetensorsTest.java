package io.cachedit.io;

import io.cachedit.error.WeightLoadException;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The safetensors reader and writer, including hostile files and a mutation fuzzer. */
class SafetensorsTest {
  private PointerScope scope;

  @BeforeEach
  void open() {
    scope = new PointerScope();
  }

  @AfterEach
  void close() {
    scope.close();
  }

  static Map<String, Tensor> sample() {
    torch.manual_seed(1);
    Map<String, Tensor> m = new LinkedHashMap<>();
    m.put("a.weight", torch.randn(3, 4));
    m.put("b.bias", torch.randn(5).to(ScalarType.BFloat16));
    m.put("c.half", torch.randn(2, 2, 2).to(ScalarType.Half));
    m.put("d.int", torch.arange(new Scalar(7)).to(ScalarType.Long));
    m.put("e.byte", torch.ones(3).to(ScalarType.Byte));
    m.put("f.empty", torch.zeros(0, 4));
    m.put("g.fp8", torch.randn(4).to(ScalarType.Float8_e4m3fn));
    return m;
  }

  @Test
  void roundTrip_everyDtypeExactAndZeroCopy(@TempDir Path dir) throws Exception {
    Path file = dir.resolve("x.safetensors");
    Map<String, Tensor> in = sample();
    SafetensorsWriter.write(file, in, Map.of("format", "pt"));
    try (SafetensorsFile f = SafetensorsFile.open(file)) {
      assertEquals(in.keySet(), new java.util.TreeSet<>(f.keys()));
      assertEquals("pt", f.metadata().get("format"));
      for (Map.Entry<String, Tensor> e : in.entrySet()) {
        Tensor t = f.tensor(e.getKey());
        assertEquals(e.getValue().scalar_type().intern(), t.scalar_type().intern(), e.getKey());
        assertArrayEquals(e.getValue().sizes().vec().get(), t.sizes().vec().get());
        assertTrue(torch.equal(e.getValue().view(ScalarType.Byte), t.view(ScalarType.Byte)), e.getKey());
      }
      // copy-on-write: writing into a loaded tensor does not touch the file
      f.tensor("a.weight").mul_(new Scalar(0.0));
    }
    try (SafetensorsFile again = SafetensorsFile.open(file)) {
      assertTrue(torch.equal(in.get("a.weight"), again.tensor("a.weight")));
    }
    byte[] bytes = Files.readAllBytes(file);
    long headerLen = ByteBuffer.wrap(bytes, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
    assertEquals(0, (8 + headerLen) % 8, "data section aligned");
  }

  private static Path writeRaw(Path dir, String name, String header, int dataBytes) throws Exception {
    byte[] h = header.getBytes(StandardCharsets.UTF_8);
    ByteBuffer b = ByteBuffer.allocate(8 + h.length + dataBytes).order(ByteOrder.LITTLE_ENDIAN);
    b.putLong(h.length).put(h);
    Path p = dir.resolve(name);
    Files.write(p, b.array());
    return p;
  }

  private static void assertRejected(Path file, String expected) {
    WeightLoadException e = assertThrows(WeightLoadException.class, () -> {
      try (SafetensorsFile f = SafetensorsFile.open(file)) {
        for (String k : f.keys()) {
          f.tensor(k);
        }
      }
    });
    assertTrue(e.getMessage().contains(expected) && e.getMessage().contains(file.getFileName().toString()),
        e.getMessage());
  }

  @Test
  void hostileFilesAreRejectedWithTheReason(@TempDir Path dir) throws Exception {
    Files.write(dir.resolve("empty.safetensors"), new byte[0]);
    assertRejected(dir.resolve("empty.safetensors"), "fewer than the 8-byte");
    Path beyond = dir.resolve("beyond.safetensors");
    Files.write(beyond, ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(1000).array());
    assertRejected(beyond, "header length");
    Path huge = dir.resolve("huge.safetensors");
    Files.write(huge, ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(-1).array());
    assertRejected(huge, "header length");
    assertRejected(writeRaw(dir, "json.safetensors", "{\"a\": [", 0), "not valid JSON");
    Path utf = dir.resolve("utf.safetensors");
    Files.write(utf, ByteBuffer.allocate(12).order(ByteOrder.LITTLE_ENDIAN).putLong(4)
        .put(new byte[] {'{', (byte) 0xC3, (byte) 0x28, '}'}).array());
    assertRejected(utf, "UTF-8");
    assertRejected(writeRaw(dir, "outside.safetensors",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8), "outside the data");
    assertRejected(writeRaw(dir, "overlap.safetensors",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
            + "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12), "overlap");
    assertRejected(writeRaw(dir, "absurd.safetensors",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[281474976710656,281474976710656],\"data_offsets\":[0,4]}}", 4),
        "absurd");
    assertRejected(writeRaw(dir, "negative.safetensors",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4), "invalid dimension");
    assertRejected(writeRaw(dir, "size.safetensors",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8), "needs 12 bytes");
    assertRejected(writeRaw(dir, "dtype.safetensors",
        "{\"a\":{\"dtype\":\"F128\",\"shape\":[1],\"data_offsets\":[0,16]}}", 16), "unsupported dtype");
    assertRejected(writeRaw(dir, "dup.safetensors",
        "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
            + "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}", 2), "not valid JSON");
    assertRejected(writeRaw(dir, "meta.safetensors", "{\"__metadata__\":{\"x\":1}}", 0), "must be a string");
    assertRejected(writeRaw(dir, "array.safetensors", "[1,2,3]", 0), "JSON object");
  }

  @Test
  void indexFiles_rejectPathTraversalAndMissingTensors(@TempDir Path dir) throws Exception {
    SafetensorsWriter.write(dir.resolve("s1.safetensors"), Map.of("a", torch.ones(2)), Map.of());
    Files.writeString(dir.resolve("i.json"), "{\"weight_map\": {\"a\": \"../s1.safetensors\"}}");
    WeightLoadException e = assertThrows(WeightLoadException.class, () -> SafetensorsSource.index(dir.resolve("i.json")));
    assertTrue(e.getMessage().contains("invalid shard name"), e.getMessage());
    Files.writeString(dir.resolve("i.json"), "{\"weight_map\": {\"b\": \"s1.safetensors\"}}");
    e = assertThrows(WeightLoadException.class, () -> SafetensorsSource.index(dir.resolve("i.json")));
    assertTrue(e.getMessage().contains("does not contain"), e.getMessage());
    Files.writeString(dir.resolve("i.json"), "{\"weight_map\": {\"a\": \"s1.safetensors\"}}");
    try (SafetensorsSource s = SafetensorsSource.index(dir.resolve("i.json"))) {
      assertTrue(torch.equal(torch.ones(2), s.load("a")));
    }
  }

  @Test
  void shardedSaveAndLoad(@TempDir Path dir) {
    Map<String, Tensor> params = new LinkedHashMap<>();
    for (int i = 0; i < 6; i++) {
      params.put("layer." + i + ".weight", torch.full(new long[] {256}, new Scalar((double) i)));
    }
    DiffusersFolder.save(dir, "{\"_class_name\": \"X\"}", params, 2048);  // 1 KB tensors: 2 per shard
    assertTrue(Files.exists(dir.resolve(DiffusersFolder.INDEX)));
    assertTrue(Files.exists(dir.resolve("diffusion_pytorch_model-00003-of-00003.safetensors")));
    DiffusersFolder folder = DiffusersFolder.resolve(dir);
    try (SafetensorsSource s = folder.openWeights()) {
      assertEquals(6, s.keys().size());
      assertEquals(5.0, s.load("layer.5.weight").mean().item_double());
    }
  }

  /** Thousands of mutated files: every one loads or fails with a WeightLoadException; none crashes. */
  @Test
  void fuzz_mutatedFilesNeverCrashOrHang(@TempDir Path dir) throws Exception {
    Path valid = dir.resolve("valid.safetensors");
    SafetensorsWriter.write(valid, sample(), Map.of("format", "pt"));
    byte[] original = Files.readAllBytes(valid);
    int headerEnd = 8 + (int) ByteBuffer.wrap(original, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
    Random rnd = new Random(42);
    int loaded = 0;
    int rejected = 0;
    long start = System.nanoTime();
    for (int i = 0; i < 3000; i++) {
      byte[] b = original.clone();
      switch (rnd.nextInt(6)) {
        case 0 -> { // flip bytes in the header
          for (int k = 0; k < 1 + rnd.nextInt(4); k++) {
            b[8 + rnd.nextInt(headerEnd - 8)] ^= (byte) (1 << rnd.nextInt(8));
          }
        }
        case 1 -> { // replace a digit in the header (shapes and offsets)
          int pos = 8 + rnd.nextInt(headerEnd - 8);
          while (pos < headerEnd && !Character.isDigit(b[pos])) {
            pos++;
          }
          if (pos < headerEnd) {
            b[pos] = (byte) ('0' + rnd.nextInt(10));
          }
        }
        case 2 -> b = java.util.Arrays.copyOf(b, rnd.nextInt(b.length));  // truncate
        case 3 -> { // corrupt the header length
          ByteBuffer.wrap(b, 0, 8).order(ByteOrder.LITTLE_ENDIAN).putLong(0, rnd.nextLong() >>> rnd.nextInt(64));
        }
        case 4 -> { // random bytes in the data section (must load)
          b[headerEnd + rnd.nextInt(b.length - headerEnd)] = (byte) rnd.nextInt();
        }
        default -> { // insert a random character into the header
          int pos = 8 + rnd.nextInt(headerEnd - 8);
          b[pos] = (byte) " {}[],:\"-.9eE".charAt(rnd.nextInt(13));
        }
      }
      Path p = dir.resolve("m" + i + ".safetensors");
      Files.write(p, b);
      try (PointerScope s = new PointerScope(); SafetensorsFile f = SafetensorsFile.open(p)) {
        for (String k : f.keys()) {
          Tensor t = f.tensor(k);
          if (t.numel() > 0) {
            t.view(ScalarType.Byte).to(ScalarType.Long).sum().item_long();  // touch every byte
          }
        }
        loaded++;
      } catch (WeightLoadException e) {
        rejected++;
      }
      Files.delete(p);
    }
    double seconds = (System.nanoTime() - start) / 1e9;
    assertEquals(3000, loaded + rejected);
    assertTrue(rejected > 1000 && loaded > 300, "loaded " + loaded + ", rejected " + rejected);
    assertTrue(seconds < 120, "fuzzing took " + seconds + " s");
  }

  /** A FIFO (or a directory) named like a weight file fails at once, naming it, instead of blocking forever. */
  @org.junit.jupiter.api.Test
  @org.junit.jupiter.api.Timeout(20)
  void nonRegularFilesAreRejectedWithoutReading(@org.junit.jupiter.api.io.TempDir java.nio.file.Path dir)
      throws Exception {
    java.nio.file.Path fifo = dir.resolve("model.safetensors");
    org.junit.jupiter.api.Assumptions.assumeTrue(new ProcessBuilder("mkfifo", fifo.toString()).start().waitFor() == 0,
        "mkfifo unavailable");
    io.cachedit.error.WeightLoadException e = org.junit.jupiter.api.Assertions.assertThrows(
        io.cachedit.error.WeightLoadException.class, () -> SafetensorsFile.open(fifo));
    org.junit.jupiter.api.Assertions.assertTrue(e.getMessage().contains(fifo.toString())
        && e.getMessage().contains("not a regular file"), e.getMessage());
    java.nio.file.Path folder = java.nio.file.Files.createDirectories(dir.resolve("x.safetensors"));
    org.junit.jupiter.api.Assertions.assertTrue(org.junit.jupiter.api.Assertions.assertThrows(
        io.cachedit.error.WeightLoadException.class, () -> SafetensorsFile.open(folder)).getMessage()
        .contains("a directory"));
    java.nio.file.Path config = dir.resolve("config.json");
    new ProcessBuilder("mkfifo", config.toString()).start().waitFor();
    org.junit.jupiter.api.Assertions.assertThrows(io.cachedit.error.WeightLoadException.class,
        () -> JsonConfig.read(config));
  }
}
