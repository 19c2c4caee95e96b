package io.cachedit.diffusers;

import io.cachedit.image.Images;
import java.nio.file.Path;
import java.util.List;

/**
 * The images of one request, as 8-bit RGB ({@link Images.Image8}) and as the pipeline's float output
 * ({@code output_type="np"}: [images, height, width, 3] in [0, 1], row-major).
 */
public record GeneratedImages(List<Images.Image8> images, float[] pixels, int width, int height) {
  public GeneratedImages {
    images = List.copyOf(images);
  }

  /** Writes image {@code index} as a PNG (atomically). */
  public void writePng(int index, Path file) {
    Images.writePng(images.get(index), file);
  }

  public int count() {
    return images.size();
  }

  /**
   * Writes the images as an animated GIF (a video's frames; the JDK's GIF writer, looping), each
   * shown {@code 1000 / fps} ms; written to a temporary file and moved into place.
   */
  public void writeGif(Path file, int fps) {
    if (fps < 1 || fps > 100) {
      throw new IllegalArgumentException("fps must be 1..100, got " + fps);
    }
    Images.writeAtomically(Gif.encode(images, Math.max(1, Math.round(100f / fps))), file);
  }
}
