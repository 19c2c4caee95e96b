package io.cachedit.fashion;

import java.io.DataInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.zip.GZIPInputStream;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptions;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * Fashion-MNIST from its IDX files (gzipped or not), as Debian's {@code dataset-fashion-mnist}
 * package installs them: 28x28 grayscale, 10 classes, 60,000 training and 10,000 test images.
 *
 * @param images [N, 28, 28] uint8
 * @param labels [N] int64 in 0..9
 */
public record FashionMnist(Tensor images, Tensor labels) {
  /** Where Debian puts the files. */
  public static final Path DEFAULT_DIR = Path.of("/usr/share/datasets/fashion-mnist");

  /** The ten classes in label order: the prompts of the bundled model. */
  public static final List<String> CLASSES = List.of("t-shirt", "trouser", "pullover", "dress", "coat", "sandal",
      "shirt", "sneaker", "bag", "ankle boot");

  public static final int SIDE = 28;

  public long size() {
    return labels.size(0);
  }

  /** The training split ({@code train-*}) or the test split ({@code t10k-*}). */
  public static FashionMnist load(Path dir, boolean train) {
    String prefix = train ? "train" : "t10k";
    Path images = find(dir, prefix + "-images-idx3-ubyte");
    Path labels = find(dir, prefix + "-labels-idx1-ubyte");
    byte[] imageBytes = read(images, 0x00000803, 3);
    byte[] labelBytes = read(labels, 0x00000801, 1);
    int n = labelBytes.length;
    if (imageBytes.length != (long) n * SIDE * SIDE) {
      throw new IllegalArgumentException(images + " holds " + imageBytes.length / (SIDE * SIDE) + " images but "
          + labels + " holds " + n + " labels");
    }
    Tensor img = fromBytes(imageBytes).view(n, SIDE, SIDE);
    Tensor lab = fromBytes(labelBytes).to(ScalarType.Long);
    if (lab.max().item_long() > 9) {
      throw new IllegalArgumentException(labels + " has labels outside 0..9");
    }
    return new FashionMnist(img, lab);
  }

  private static Tensor fromBytes(byte[] bytes) {
    BytePointer p = new BytePointer(bytes.length);
    p.put(bytes);
    // from_blob does not own the memory: clone into libtorch-owned storage before p goes away.
    Tensor t = torch.from_blob(p, new long[] {bytes.length}, new TensorOptions(ScalarType.Byte)).clone();
    p.close();
    return t;
  }

  private static Path find(Path dir, String name) {
    for (String candidate : new String[] {name + ".gz", name}) {
      Path p = dir.resolve(candidate);
      if (Files.isRegularFile(p)) {
        return p;
      }
    }
    throw new IllegalArgumentException("Fashion-MNIST file " + name + "[.gz] not found in " + dir
        + " (install Debian's dataset-fashion-mnist package or pass the folder holding the IDX files)");
  }

  private static byte[] read(Path file, int magic, int dims) {
    try (InputStream raw = Files.newInputStream(file);
         InputStream in = file.toString().endsWith(".gz") ? new GZIPInputStream(raw) : raw;
         DataInputStream data = new DataInputStream(in)) {
      int m = data.readInt();
      if (m != magic) {
        throw new IllegalArgumentException(file + " is not an IDX file of rank " + dims + " (magic " + Integer.toHexString(m)
            + ")");
      }
      long count = 1;
      for (int i = 0; i < dims; i++) {
        int d = data.readInt();
        if (d <= 0 || (i > 0 && d != SIDE)) {
          throw new IllegalArgumentException(file + ": unexpected dimension " + d);
        }
        count *= d;
      }
      if (count > 100_000_000L) {
        throw new IllegalArgumentException(file + ": " + count + " bytes is not Fashion-MNIST");
      }
      byte[] out = new byte[(int) count];
      data.readFully(out);
      return out;
    } catch (IOException e) {
      throw new IllegalArgumentException("cannot read " + file + ": " + e.getMessage(), e);
    }
  }
}
