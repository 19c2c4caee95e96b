package io.cachedit.metrics;

import io.cachedit.image.Images.Image8;

/**
 * Full-reference metrics of 8-bit images with scikit-image's definitions ({@code data_range} 255):
 * {@code mean_squared_error}, {@code peak_signal_noise_ratio} and {@code structural_similarity} with its
 * defaults (7x7 uniform window, K1 0.01, K2 0.03, sample covariance, borders of 3 pixels cropped;
 * colour images: the mean over channels, as with {@code channel_axis=-1}). Computed in double.
 */
public final class ImageMetrics {
  private ImageMetrics() {}

  public static final int WINDOW = 7;
  static final double DATA_RANGE = 255.0;

  private static void sameShape(Image8 a, Image8 b) {
    if (a.width() != b.width() || a.height() != b.height() || a.channels() != b.channels()) {
      throw new IllegalArgumentException("images differ in shape: " + a.width() + "x" + a.height() + "x" + a.channels()
          + " vs " + b.width() + "x" + b.height() + "x" + b.channels());
    }
  }

  /** Mean of squared differences over all pixels and channels. */
  public static double mse(Image8 a, Image8 b) {
    sameShape(a, b);
    double sum = 0;
    int[] x = a.data();
    int[] y = b.data();
    for (int i = 0; i < x.length; i++) {
      double d = x[i] - y[i];
      sum += d * d;
    }
    return sum / x.length;
  }

  /** {@code 10 log10(255^2 / mse)}; +infinity for identical images. */
  public static double psnr(Image8 a, Image8 b) {
    double mse = mse(a, b);
    return mse == 0 ? Double.POSITIVE_INFINITY : 10 * Math.log10(DATA_RANGE * DATA_RANGE / mse);
  }

  /** Mean SSIM (channels averaged). Images must be at least 7x7. */
  public static double ssim(Image8 a, Image8 b) {
    sameShape(a, b);
    if (a.width() < WINDOW || a.height() < WINDOW) {
      throw new IllegalArgumentException("SSIM needs images of at least " + WINDOW + "x" + WINDOW + " pixels, got "
          + a.width() + "x" + a.height());
    }
    double sum = 0;
    for (int c = 0; c < a.channels(); c++) {
      sum += ssimChannel(a, b, c);
    }
    return sum / a.channels();
  }

  private static double ssimChannel(Image8 a, Image8 b, int c) {
    int w = a.width();
    int h = a.height();
    double[] x = new double[w * h];
    double[] y = new double[w * h];
    for (int i = 0; i < w * h; i++) {
      x[i] = a.data()[i * a.channels() + c];
      y[i] = b.data()[i * b.channels() + c];
    }
    double np = WINDOW * WINDOW;
    double covNorm = np / (np - 1);
    double c1 = Math.pow(0.01 * DATA_RANGE, 2);
    double c2 = Math.pow(0.03 * DATA_RANGE, 2);
    // Column sums over 7 rows first, then 7 columns: the window means of every fully covered pixel.
    double[][] rowsSum = new double[5][w * (h - WINDOW + 1)];
    for (int top = 0; top + WINDOW <= h; top++) {
      for (int col = 0; col < w; col++) {
        double sx = 0;
        double sy = 0;
        double sxx = 0;
        double syy = 0;
        double sxy = 0;
        for (int k = 0; k < WINDOW; k++) {
          double vx = x[(top + k) * w + col];
          double vy = y[(top + k) * w + col];
          sx += vx;
          sy += vy;
          sxx += vx * vx;
          syy += vy * vy;
          sxy += vx * vy;
        }
        int o = top * w + col;
        rowsSum[0][o] = sx;
        rowsSum[1][o] = sy;
        rowsSum[2][o] = sxx;
        rowsSum[3][o] = syy;
        rowsSum[4][o] = sxy;
      }
    }
    double total = 0;
    long count = 0;
    for (int top = 0; top + WINDOW <= h; top++) {
      for (int left = 0; left + WINDOW <= w; left++) {
        double[] m = new double[5];
        for (int s = 0; s < 5; s++) {
          double acc = 0;
          for (int k = 0; k < WINDOW; k++) {
            acc += rowsSum[s][top * w + left + k];
          }
          m[s] = acc / np;
        }
        double ux = m[0];
        double uy = m[1];
        double vx = covNorm * (m[2] - ux * ux);
        double vy = covNorm * (m[3] - uy * uy);
        double vxy = covNorm * (m[4] - ux * uy);
        double a1 = 2 * ux * uy + c1;
        double a2 = 2 * vxy + c2;
        double b1 = ux * ux + uy * uy + c1;
        double b2 = vx + vy + c2;
        total += (a1 * a2) / (b1 * b2);
        count++;
      }
    }
    return total / count;
  }
}
