package io.cachedit.kernels;

import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * How the low-bit linear kernels store a weight matrix [out, in] (docs/quantization.md). The
 * canonical tensors are what a quantized checkpoint holds; the kernels read a packed copy.
 */
public enum QuantFormat {
  /** int8 [out, in], symmetric, one fp32 scale per output row (absmax / 127) or per tensor. */
  INT8(0, ScalarType.Char),
  /** float8 e4m3fn [out, in], one fp32 scale per output row (absmax / 448) or per tensor. */
  FP8(1, ScalarType.Float8_e4m3fn),
  /**
   * 4-bit [out, in / 2] bytes (input 2i in the low nibble, stored as q + 8, q in -8..7), one fp32
   * scale per output row and group of inputs: w ~ q * scale.
   */
  INT4(2, ScalarType.Byte);

  final int code;
  private final ScalarType storage;

  QuantFormat(int code, ScalarType storage) {
    this.code = code;
    this.storage = storage;
  }

  /** The dtype of the canonical weight tensor. */
  public ScalarType storage() {
    return storage;
  }

  /** The canonical weight's shape for an [out, in] matrix. */
  public long[] storedShape(long out, long in) {
    return this == INT4 ? new long[] {out, in / 2} : new long[] {out, in};
  }

  /** Number of scales: per tensor 1, per row {@code out}, int4 {@code out * in / group}. */
  public long scaleCount(long out, long in, int group, boolean perTensor) {
    if (this == INT4) {
      return out * (in / group);
    }
    return perTensor ? 1 : out;
  }
}
