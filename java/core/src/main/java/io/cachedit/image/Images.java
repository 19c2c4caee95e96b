package io.cachedit.image;

import java.awt.image.BufferedImage;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import javax.imageio.ImageIO;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/** Conversions between model outputs, 8-bit pixel arrays and PNG files. */
public final class Images {
  private Images() {}

  /**
   * An 8-bit image: {@code pixels[y][x][c]} with 1 (grayscale) or 3 (RGB) channels.
   *
   * @param width columns
   * @param height rows
   * @param channels 1 or 3
   * @param data row-major, channel-interleaved bytes 0..255
   */
  public record Image8(int width, int height, int channels, int[] data) {
    public Image8 {
      if (channels != 1 && channels != 3) {
        throw new IllegalArgumentException("images must have 1 or 3 channels, got " + channels);
      }
      if (data.length != width * height * channels) {
        throw new IllegalArgumentException("pixel array of " + data.length + " values for " + width + "x" + height + "x"
            + channels);
      }
    }

    public int get(int y, int x, int c) {
      return data[(y * width + x) * channels + c];
    }
  }

  /**
   * Model output in [-1, 1] ([C, H, W], C = 1 or 3) to 8-bit: {@code round(clamp((x + 1) / 2, 0, 1) * 255)}
   * computed in fp32.
   */
  public static Image8 fromTensor(Tensor chw) {
    Tensor t = chw.to(ScalarType.Float).add(new Scalar(1.0)).div(new Scalar(2.0)).clamp(new org.bytedeco.pytorch.ScalarOptional(new Scalar(0.0)),
        new org.bytedeco.pytorch.ScalarOptional(new Scalar(1.0))).mul(new Scalar(255.0)).round().to(ScalarType.Int)
        .permute(1, 2, 0).contiguous();
    int c = (int) chw.size(0);
    int h = (int) chw.size(1);
    int w = (int) chw.size(2);
    int[] data = new int[h * w * c];
    new org.bytedeco.javacpp.IntPointer(t.data_ptr_int()).capacity(data.length).get(data);
    return new Image8(w, h, c, data);
  }

  /** Value of the separator lines between grid tiles (mid-gray, visible on black backgrounds). */
  static final int SEPARATOR = 96;

  /** A grid of equally sized images, {@code columns} per row, separated by {@code pad}-pixel gray lines. */
  public static Image8 grid(java.util.List<Image8> images, int columns, int pad) {
    if (images.isEmpty()) {
      throw new IllegalArgumentException("no images");
    }
    Image8 first = images.get(0);
    int rows = (images.size() + columns - 1) / columns;
    int w = columns * first.width() + (columns + 1) * pad;
    int h = rows * first.height() + (rows + 1) * pad;
    int c = first.channels();
    int[] data = new int[w * h * c];
    java.util.Arrays.fill(data, SEPARATOR);
    for (int i = 0; i < images.size(); i++) {
      Image8 im = images.get(i);
      if (im.width() != first.width() || im.height() != first.height() || im.channels() != c) {
        throw new IllegalArgumentException("grid images must share one size");
      }
      int ox = pad + (i % columns) * (first.width() + pad);
      int oy = pad + (i / columns) * (first.height() + pad);
      for (int y = 0; y < im.height(); y++) {
        System.arraycopy(im.data(), y * im.width() * c, data, ((oy + y) * w + ox) * c, im.width() * c);
      }
    }
    return new Image8(w, h, c, data);
  }

  /** Nearest-neighbour upscaling by an integer factor (28-pixel samples are hard to see). */
  public static Image8 upscale(Image8 im, int factor) {
    int w = im.width() * factor;
    int h = im.height() * factor;
    int c = im.channels();
    int[] data = new int[w * h * c];
    for (int y = 0; y < h; y++) {
      for (int x = 0; x < w; x++) {
        for (int k = 0; k < c; k++) {
          data[(y * w + x) * c + k] = im.get(y / factor, x / factor, k);
        }
      }
    }
    return new Image8(w, h, c, data);
  }

  /** The image as PNG file bytes (8-bit gray or RGB). */
  public static byte[] encodePng(Image8 im) {
    BufferedImage b = new BufferedImage(im.width(), im.height(),
        im.channels() == 1 ? BufferedImage.TYPE_BYTE_GRAY : BufferedImage.TYPE_INT_RGB);
    for (int y = 0; y < im.height(); y++) {
      for (int x = 0; x < im.width(); x++) {
        if (im.channels() == 1) {
          b.getRaster().setSample(x, y, 0, im.get(y, x, 0));
        } else {
          b.setRGB(x, y, (im.get(y, x, 0) << 16) | (im.get(y, x, 1) << 8) | im.get(y, x, 2));
        }
      }
    }
    java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
    try {
      if (!ImageIO.write(b, "png", out)) {
        throw new IOException("no PNG writer");
      }
    } catch (IOException e) {
      throw new UncheckedIOException("cannot encode a PNG: " + e.getMessage(), e);
    }
    return out.toByteArray();
  }

  public static void writePng(Image8 im, Path file) {
    writeAtomically(encodePng(im), file);
  }

  /**
   * Writes {@code bytes} to {@code file} through a temporary file beside it, renamed over it: a crash or
   * a full disk never leaves a truncated file, and an existing good one stays until the new one is complete.
   */
  public static void writeAtomically(byte[] bytes, Path file) {
    checkWritable(file);
    Path parent = file.toAbsolutePath().getParent();
    Path tmp = null;
    try {
      tmp = Files.createTempFile(parent, "." + file.getFileName(), ".tmp");
      Files.write(tmp, bytes);
      Files.move(tmp, file.toAbsolutePath(), java.nio.file.StandardCopyOption.REPLACE_EXISTING,
          java.nio.file.StandardCopyOption.ATOMIC_MOVE);
      tmp = null;
    } catch (IOException e) {
      throw new UncheckedIOException("cannot write " + file + ": " + e.getMessage(), e);
    } finally {
      if (tmp != null) {
        try {
          Files.deleteIfExists(tmp);
        } catch (IOException ignored) {
          // the original error says what went wrong
        }
      }
    }
  }

  /**
   * Checks, before any work, that {@code file} can be written: not a directory, its folder exists (or
   * is created) and is writable. Throws {@link UncheckedIOException} naming the path otherwise.
   */
  public static void checkWritable(Path file) {
    Path abs = file.toAbsolutePath();
    if (Files.isDirectory(abs)) {
      String msg = "cannot write " + file + ": it is a directory; give a file name such as " + file.resolve("out.png");
      throw new UncheckedIOException(msg, new IOException(msg));
    }
    Path parent = abs.getParent();
    try {
      if (parent != null) {
        Files.createDirectories(parent);
      }
    } catch (IOException e) {
      throw new UncheckedIOException("cannot write " + file + ": cannot create its folder " + parent + " ("
          + e.getClass().getSimpleName() + ": " + e.getMessage() + ")", e);
    }
    if (parent != null && !Files.isWritable(parent)) {
      String msg = "cannot write " + file + ": its folder " + parent + " is not writable";
      throw new UncheckedIOException(msg, new IOException(msg));
    }
  }

  /**
   * Reads a PNG (or any format ImageIO reads) as 8-bit: grayscale stays 1 channel, everything else
   * becomes RGB (alpha dropped). 16-bit images are rejected.
   */
  public static Image8 readImage(Path file) {
    BufferedImage b;
    try {
      b = ImageIO.read(file.toFile());
    } catch (IOException e) {
      throw new IllegalArgumentException("cannot read image " + file + ": " + e.getMessage(), e);
    }
    if (b == null) {
      throw new IllegalArgumentException(file + " is not an image ImageIO can read (use PNG)");
    }
    int w = b.getWidth();
    int h = b.getHeight();
    if (b.getColorModel().getComponentSize(0) > 8) {
      throw new IllegalArgumentException(file + " has more than 8 bits per channel; metrics take 8-bit images");
    }
    boolean gray = b.getType() == BufferedImage.TYPE_BYTE_GRAY
        || (b.getColorModel().getNumColorComponents() == 1 && b.getRaster().getNumBands() == 1);
    if (gray) {
      int[] data = new int[w * h];
      b.getRaster().getSamples(0, 0, w, h, 0, data);
      return new Image8(w, h, 1, data);
    }
    int[] data = new int[w * h * 3];
    for (int y = 0; y < h; y++) {
      for (int x = 0; x < w; x++) {
        int rgb = b.getRGB(x, y);
        int i = (y * w + x) * 3;
        data[i] = (rgb >> 16) & 0xff;
        data[i + 1] = (rgb >> 8) & 0xff;
        data[i + 2] = rgb & 0xff;
      }
    }
    return new Image8(w, h, 3, data);
  }

  /** [N, C, H, W] tensor of 8-bit images as fp32 in [-1, 1] (the inverse of {@link #fromTensor}, up to rounding). */
  public static Tensor toTensor(java.util.List<Image8> images) {
    Image8 first = images.get(0);
    float[] values = new float[images.size() * first.data().length];
    int k = 0;
    for (Image8 im : images) {
      if (im.width() != first.width() || im.height() != first.height() || im.channels() != first.channels()) {
        throw new IllegalArgumentException("images must share one size");
      }
      for (int v : im.data()) {
        values[k++] = v / 127.5f - 1f;
      }
    }
    return torch.tensor(values).view(images.size(), first.height(), first.width(), first.channels())
        .permute(0, 3, 1, 2).contiguous();
  }
}
