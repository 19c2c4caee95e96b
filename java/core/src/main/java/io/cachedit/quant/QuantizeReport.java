package io.cachedit.quant;

import java.util.List;
import java.util.Locale;

/**
 * What one {@code quantize} call did.
 *
 * @param model the model's class name (or component name)
 * @param quantized the layers quantised, in build order
 * @param skipped the layers kept dense, each with why
 * @param bytesBefore weight bytes of every linear layer before (dense)
 * @param bytesAfter weight bytes of every linear layer after (quantised ones with their scales)
 * @param unmatchedExcludes exclude patterns that matched no layer (probably a typo)
 */
public record QuantizeReport(String model, List<Layer> quantized, List<Skipped> skipped, long bytesBefore,
    long bytesAfter, List<String> unmatchedExcludes) {

  public QuantizeReport {
    quantized = List.copyOf(quantized);
    skipped = List.copyOf(skipped);
    unmatchedExcludes = List.copyOf(unmatchedExcludes);
  }

  /**
   * One quantised layer.
   *
   * @param name its key prefix
   * @param type what it computes (e.g. {@code int8_per_row}; a per-tensor fallback says so)
   * @param inFeatures inputs
   * @param outFeatures outputs
   * @param bytesBefore dense weight bytes
   * @param bytesAfter quantised weight and scale bytes
   */
  public record Layer(String name, String type, long inFeatures, long outFeatures, long bytesBefore,
      long bytesAfter) {}

  /**
   * One layer kept dense.
   *
   * @param name its key prefix
   * @param reason why
   */
  public record Skipped(String name, String reason) {}

  /** Weight bytes of the quantised layers after over before (e.g. 0.25 for int8 from fp32). */
  public double quantizedRatio() {
    long before = quantized.stream().mapToLong(Layer::bytesBefore).sum();
    long after = quantized.stream().mapToLong(Layer::bytesAfter).sum();
    return before == 0 ? 1.0 : (double) after / before;
  }

  /** A one-line summary: layers, bytes, ratio. */
  public String summary() {
    return String.format(Locale.ROOT, "%s: %d linear layers quantised, %d kept dense; linear weights %.2f MiB -> "
        + "%.2f MiB (quantised layers %.3fx)%s", model, quantized.size(), skipped.size(), bytesBefore / 1048576.0,
        bytesAfter / 1048576.0, quantizedRatio(), unmatchedExcludes.isEmpty() ? ""
            : "; exclude patterns that matched nothing: " + unmatchedExcludes);
  }

  @Override
  public String toString() {
    return summary();
  }
}
