package io.cachedit.kernels;

/**
 * How rows of {@code D} values travel in a Ulysses all-to-all buffer (docs/kernels.md section 3).
 *
 * <p>{@link #RAW} keeps the input dtype. The two FP8 formats store each row as {@code D} float8
 * e4m3fn bytes followed by the row's scale: fp32 (4 bytes, {@code max(absmax/448, 1e-6)}) for Q and
 * V, bf16 (2 bytes, {@code max(absmax, 1e-4)/448}) for the attention output O. Quantisation
 * saturates, so a finite input never becomes NaN.
 */
public enum Wire {
  RAW(0),
  FP8_F32_SCALE(1),
  FP8_BF16_SCALE(2);

  final int code;

  Wire(int code) {
    this.code = code;
  }

  /** Bytes per row on the wire for a head dimension and an element size in bytes. */
  public long rowBytes(long headDim, long elementSize) {
    return switch (this) {
      case RAW -> headDim * elementSize;
      case FP8_F32_SCALE -> headDim + 4;
      case FP8_BF16_SCALE -> headDim + 2;
    };
  }

  /** The head dimension encoded by a wire row of {@code rowBytes} bytes (or elements, for RAW). */
  long headDim(long lastDim) {
    return switch (this) {
      case RAW -> lastDim;
      case FP8_F32_SCALE -> lastDim - 4;
      case FP8_BF16_SCALE -> lastDim - 2;
    };
  }
}
