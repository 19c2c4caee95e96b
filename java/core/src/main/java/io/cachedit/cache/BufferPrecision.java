package io.cachedit.cache;

/**
 * Precision in which cached residuals are held between steps (beyond the reference, which keeps
 * them in the model dtype). Lower precision cuts cache memory; the summary reports the bytes held.
 */
public enum BufferPrecision {
  /** The tensors' own dtype (the reference's behaviour). */
  FULL,
  /** bfloat16: half the memory of fp32, a relative error of at most 2^-9 per element. */
  BF16,
  /** float8 e4m3fn with one fp32 scale per row of the last dimension: a quarter of fp32. */
  FP8
}
