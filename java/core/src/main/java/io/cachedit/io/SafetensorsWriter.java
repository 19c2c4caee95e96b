package io.cachedit.io;

import io.cachedit.error.WeightLoadException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;

/**
 * Writes tensors in the safetensors format. Tensors are laid out by descending element size, then
 * name, and the header is padded to 8 bytes, so every tensor's offset is aligned for its dtype and
 * loads zero-copy. Files are written to a temporary name and moved into place.
 */
public final class SafetensorsWriter {
  private static final ObjectMapper JSON = new ObjectMapper();

  private SafetensorsWriter() {}

  public static void write(Path file, Map<String, Tensor> tensors, Map<String, String> metadata) {
    List<String> names = new ArrayList<>(tensors.keySet());
    names.sort(Comparator.comparingInt((String n) -> -SafetensorsDType.of(tensors.get(n).scalar_type()).size)
        .thenComparing(Comparator.naturalOrder()));
    ObjectNode header = JSON.createObjectNode();
    if (metadata != null && !metadata.isEmpty()) {
      ObjectNode meta = header.putObject("__metadata__");
      metadata.forEach(meta::put);
    }
    long offset = 0;
    for (String name : names) {
      Tensor t = tensors.get(name);
      SafetensorsDType dtype = SafetensorsDType.of(t.scalar_type());
      ObjectNode entry = header.putObject(name);
      entry.put("dtype", dtype.name());
      ArrayNode shape = entry.putArray("shape");
      for (long d : t.sizes().vec().get()) {
        shape.add(d);
      }
      long bytes = t.numel() * dtype.size;
      entry.putArray("data_offsets").add(offset).add(offset + bytes);
      offset += bytes;
    }
    byte[] json;
    try {
      json = JSON.writeValueAsBytes(header);
    } catch (IOException e) {
      throw new WeightLoadException("cannot encode safetensors header for " + file, e);
    }
    int padded = (json.length + 7) / 8 * 8;
    ByteBuffer prefix = ByteBuffer.allocate(8 + padded).order(ByteOrder.LITTLE_ENDIAN);
    prefix.putLong(padded).put(json);
    while (prefix.position() < 8 + padded) {
      prefix.put((byte) ' ');
    }
    prefix.flip();
    Path tmp = null;
    try {
      Path dir = file.toAbsolutePath().getParent();
      Files.createDirectories(dir);
      // a unique temporary file beside the target: concurrent writers never share it, and it goes on failure
      tmp = Files.createTempFile(dir, "." + file.getFileName(), ".tmp");
      try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING)) {
        writeAll(ch, prefix);
        for (String name : names) {
          try (PointerScope scope = new PointerScope()) {
            Tensor t = tensors.get(name).cpu().contiguous();
            long bytes = t.nbytes();
            if (bytes == 0) {
              continue;
            }
            BytePointer data = new BytePointer(t.data_ptr()).capacity(bytes);
            for (long pos = 0; pos < bytes; pos += Integer.MAX_VALUE / 2) {
              long len = Math.min(Integer.MAX_VALUE / 2, bytes - pos);
              BytePointer chunk = new BytePointer(data).position(pos).limit(pos + len);
              writeAll(ch, chunk.asByteBuffer());
            }
          }
        }
      }
      Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
      tmp = null;
    } catch (IOException e) {
      throw new WeightLoadException("cannot write " + file + ": " + e.getMessage(), e);
    } finally {
      if (tmp != null) {
        try {
          Files.deleteIfExists(tmp);
        } catch (IOException ignored) {
          // the write's own error says what went wrong
        }
      }
    }
  }

  private static void writeAll(FileChannel ch, ByteBuffer buf) throws IOException {
    while (buf.hasRemaining()) {
      ch.write(buf);
    }
  }
}
