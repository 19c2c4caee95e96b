package io.cachedit.io;

import io.cachedit.error.WeightLoadException;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.cachedit.kernels.NativeScope;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.CharBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.BoolOptional;
import org.bytedeco.pytorch.LongOptional;
import org.bytedeco.pytorch.MemoryFormatOptional;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptions;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * A safetensors file, its header parsed and checked up front; tensors are zero-copy views of a
 * private (copy-on-write) memory mapping of the file, so writes to them never reach the file.
 *
 * <p>Every structural problem (truncated file, header length beyond the file, invalid UTF-8 or JSON,
 * unknown dtype, absurd or negative shapes, offsets outside the data or overlapping, sizes that do
 * not match the shape) is a {@link WeightLoadException} naming the file and the tensor; nothing
 * out of bounds is ever mapped or read.
 */
public final class SafetensorsFile implements AutoCloseable {
  /** Largest header accepted (the reference implementation's limit). */
  public static final long MAX_HEADER_BYTES = 100L << 20;
  private static final int MAX_RANK = 32;
  private static final long MAX_DIM = 1L << 48;

  /** One tensor's header entry; offsets are relative to the start of the data section. */
  public record Entry(String name, SafetensorsDType dtype, long[] shape, long begin, long end) {
    public long numel() {
      long n = 1;
      for (long d : shape) {
        n *= d;
      }
      return n;
    }

    @Override
    public String toString() {
      return name + " " + dtype + Arrays.toString(shape);
    }
  }

  private final Path path;
  private final long fileSize;
  private final long dataStart;
  private final Map<String, Entry> entries;
  private final Map<String, String> metadata;
  private final NativeScope owner = NativeScope.owner("safetensors mapping");
  private Tensor mapping;  // kept in owner; the whole file, mapped privately on first tensor access
  private boolean closed;

  private SafetensorsFile(Path path, long fileSize, long dataStart, Map<String, Entry> entries,
      Map<String, String> metadata) {
    this.path = path;
    this.fileSize = fileSize;
    this.dataStart = dataStart;
    this.entries = entries;
    this.metadata = metadata;
  }

  /**
   * Throws {@link WeightLoadException} unless {@code path} is a regular file: reading a FIFO or a
   * device would block or never end, a directory cannot be read.
   */
  static void requireRegularFile(Path path, String what) {
    if (!java.nio.file.Files.exists(path)) {
      throw new WeightLoadException(what + " " + path + " does not exist");
    }
    if (!java.nio.file.Files.isRegularFile(path)) {
      throw new WeightLoadException(what + " " + path + " is not a regular file (" + (java.nio.file.Files.isDirectory(path)
          ? "a directory" : "a FIFO, socket or device") + "); give the path of a file");
    }
  }

  /** Opens and validates a file; reads only its header. */
  public static SafetensorsFile open(Path path) {
    requireRegularFile(path, "safetensors file");
    try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
      long size = ch.size();
      if (size < 8) {
        throw fail(path, "file has " + size + " bytes, fewer than the 8-byte header length");
      }
      ByteBuffer lenBuf = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
      readFully(ch, lenBuf, 0, path);
      long headerLen = lenBuf.getLong(0);
      if (headerLen < 2 || headerLen > MAX_HEADER_BYTES || headerLen > size - 8) {
        throw fail(path, "header length " + Long.toUnsignedString(headerLen) + " is invalid for a file of "
            + size + " bytes (at most " + MAX_HEADER_BYTES + ")");
      }
      ByteBuffer header = ByteBuffer.allocate((int) headerLen);
      readFully(ch, header, 8, path);
      header.flip();
      String json = decodeUtf8(header, path);
      long dataLength = size - 8 - headerLen;
      Map<String, String> meta = new LinkedHashMap<>();
      Map<String, Entry> entries = parseHeader(json, dataLength, meta, path);
      return new SafetensorsFile(path, size, 8 + headerLen, entries, Collections.unmodifiableMap(meta));
    } catch (IOException e) {
      throw new WeightLoadException("cannot read safetensors file " + path + ": " + e.getMessage(), e);
    }
  }

  private static void readFully(FileChannel ch, ByteBuffer buf, long position, Path path) throws IOException {
    long pos = position;
    while (buf.hasRemaining()) {
      int n = ch.read(buf, pos);
      if (n < 0) {
        throw fail(path, "unexpected end of file while reading the header");
      }
      pos += n;
    }
  }

  private static String decodeUtf8(ByteBuffer bytes, Path path) {
    try {
      CharBuffer chars = StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
          .onUnmappableCharacter(CodingErrorAction.REPORT).decode(bytes);
      return chars.toString();
    } catch (CharacterCodingException e) {
      throw fail(path, "header is not valid UTF-8");
    }
  }

  private static final ObjectMapper JSON = new ObjectMapper()
      .enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION)
      .enable(com.fasterxml.jackson.databind.DeserializationFeature.FAIL_ON_TRAILING_TOKENS);  // padding: spaces only

  private static Map<String, Entry> parseHeader(String json, long dataLength, Map<String, String> meta, Path path) {
    JsonNode root;
    try {
      root = JSON.readTree(json);
    } catch (JsonProcessingException e) {
      throw fail(path, "header is not valid JSON: " + e.getOriginalMessage());
    }
    if (root == null || !root.isObject()) {
      throw fail(path, "header must be a JSON object");
    }
    Map<String, Entry> entries = new TreeMap<>();
    for (Iterator<Map.Entry<String, JsonNode>> it = root.fields(); it.hasNext(); ) {
      Map.Entry<String, JsonNode> field = it.next();
      String name = field.getKey();
      JsonNode node = field.getValue();
      if (name.equals("__metadata__")) {
        if (!node.isObject()) {
          throw fail(path, "__metadata__ must be an object of strings");
        }
        for (Iterator<Map.Entry<String, JsonNode>> m = node.fields(); m.hasNext(); ) {
          Map.Entry<String, JsonNode> kv = m.next();
          if (!kv.getValue().isTextual()) {
            throw fail(path, "__metadata__ value of \"" + kv.getKey() + "\" must be a string");
          }
          meta.put(kv.getKey(), kv.getValue().asText());
        }
        continue;
      }
      entries.put(name, parseEntry(name, node, dataLength, path));
    }
    // no two tensors may share bytes (zero-sized tensors occupy none), and, as the format requires, the
    // tensors cover the data section exactly: a gap or bytes past the last tensor mean a wrong header length
    List<Entry> byOffset = new ArrayList<>(entries.values());
    byOffset.removeIf(e -> e.begin() == e.end());
    byOffset.sort(Comparator.comparingLong(Entry::begin));
    long covered = 0;
    for (int i = 0; i < byOffset.size(); i++) {
      Entry cur = byOffset.get(i);
      if (cur.begin() < covered) {
        Entry prev = byOffset.get(i - 1);
        throw fail(path, "tensors " + prev.name() + " and " + cur.name() + " overlap (bytes " + cur.begin() + ".."
            + prev.end() + ")");
      }
      if (cur.begin() > covered) {
        throw fail(path, "bytes " + covered + ".." + cur.begin() + " of the data section belong to no tensor (before "
            + cur.name() + "); the header length or the offsets are wrong");
      }
      covered = cur.end();
    }
    if (covered != dataLength) {
      throw fail(path, "the tensors cover " + covered + " bytes of a " + dataLength + "-byte data section; the header"
          + " length or the file size is wrong (truncated, or bytes appended)");
    }
    return Collections.unmodifiableMap(entries);
  }

  private static Entry parseEntry(String name, JsonNode node, long dataLength, Path path) {
    if (name.isEmpty()) {
      throw fail(path, "a tensor has an empty name");
    }
    if (!node.isObject()) {
      throw fail(path, "entry of tensor " + name + " must be an object");
    }
    JsonNode dtypeNode = node.get("dtype");
    SafetensorsDType dtype = dtypeNode != null && dtypeNode.isTextual() ? SafetensorsDType.parse(dtypeNode.asText())
        : null;
    if (dtype == null) {
      throw fail(path, "tensor " + name + " has unsupported dtype " + dtypeNode + "; supported: "
          + Arrays.toString(SafetensorsDType.values()));
    }
    JsonNode shapeNode = node.get("shape");
    if (shapeNode == null || !shapeNode.isArray() || shapeNode.size() > MAX_RANK) {
      throw fail(path, "tensor " + name + " needs a shape array of at most " + MAX_RANK + " dimensions");
    }
    long[] shape = new long[shapeNode.size()];
    long numel = 1;
    for (int i = 0; i < shape.length; i++) {
      JsonNode d = shapeNode.get(i);
      if (!d.isIntegralNumber() || !d.canConvertToLong() || d.asLong() < 0 || d.asLong() > MAX_DIM) {
        throw fail(path, "tensor " + name + " has an invalid dimension " + d + " in its shape");
      }
      shape[i] = d.asLong();
      try {
        numel = Math.multiplyExact(numel, shape[i]);
      } catch (ArithmeticException e) {
        throw fail(path, "tensor " + name + " has an absurd shape " + shapeNode);
      }
    }
    JsonNode offsets = node.get("data_offsets");
    if (offsets == null || !offsets.isArray() || offsets.size() != 2 || !offsets.get(0).isIntegralNumber()
        || !offsets.get(1).isIntegralNumber() || !offsets.get(0).canConvertToLong()
        || !offsets.get(1).canConvertToLong()) {
      throw fail(path, "tensor " + name + " needs data_offsets [begin, end]");
    }
    long begin = offsets.get(0).asLong();
    long end = offsets.get(1).asLong();
    long bytes;
    try {
      bytes = Math.multiplyExact(numel, (long) dtype.size);
    } catch (ArithmeticException e) {
      throw fail(path, "tensor " + name + " has an absurd size");
    }
    if (begin < 0 || end < begin || end > dataLength) {
      throw fail(path, "tensor " + name + " has data_offsets [" + begin + ", " + end
          + "] outside the data section of " + dataLength + " bytes");
    }
    if (end - begin != bytes) {
      throw fail(path, "tensor " + name + " of shape " + Arrays.toString(shape) + " and dtype " + dtype + " needs "
          + bytes + " bytes but its data_offsets span " + (end - begin));
    }
    return new Entry(name, dtype, shape, begin, end);
  }

  private static WeightLoadException fail(Path path, String what) {
    return new WeightLoadException("invalid safetensors file " + path + ": " + what);
  }

  public Path path() {
    return path;
  }

  /** Tensor names, sorted. */
  public Set<String> keys() {
    return entries.keySet();
  }

  public Entry entry(String name) {
    return entries.get(name);
  }

  public Map<String, String> metadata() {
    return metadata;
  }

  /**
   * The tensor as a CPU view of the private mapping (no copy when its offset is aligned for its
   * dtype; otherwise an aligned copy). The result belongs to the caller's scope.
   */
  public synchronized Tensor tensor(String name) {
    if (closed) {
      throw new IllegalStateException("safetensors file " + path + " is closed");
    }
    Entry e = entries.get(name);
    if (e == null) {
      throw new WeightLoadException("tensor " + name + " is not in " + path);
    }
    if (e.numel() == 0) {
      return torch.empty(e.shape(), new TensorOptions(e.dtype().scalarType), new MemoryFormatOptional());
    }
    if (mapping == null) {
      try (PointerScope scope = new PointerScope()) {
        mapping = owner.keep(torch.from_file(path.toString(), new BoolOptional(false), new LongOptional(fileSize),
            new TensorOptions(ScalarType.Byte)));
      }
    }
    long offset = dataStart + e.begin();
    Tensor bytes = mapping.narrow(0, offset, e.end() - e.begin());
    if (offset % e.dtype().size != 0) {
      bytes = bytes.clone();
    }
    return bytes.view(e.dtype().scalarType).view(e.shape());
  }

  @Override
  public synchronized void close() {
    closed = true;
    owner.close();
    mapping = null;
  }
}
