package io.cachedit.kernels;

/** How a low-bit linear kernel quantises its input on every call (dynamic activation quantisation). */
public enum QuantActivation {
  /** Weight-only: the input is kept as 15-bit fixed point per row (14-bit next to fp8 weights). */
  NONE(0),
  /** int8 per row (token): scale = absmax / 127. */
  INT8_PER_ROW(1),
  /** int8 with one scale for the whole input. */
  INT8_PER_TENSOR(2),
  /** float8 e4m3 per row: scale = absmax / 448. */
  FP8_PER_ROW(3),
  /** float8 e4m3 with one scale for the whole input. */
  FP8_PER_TENSOR(4);

  final int code;

  QuantActivation(int code) {
    this.code = code;
  }
}
