package io.cachedit.models.common;

/** The scaled dot-product attention kernels libtorch offers, for {@link Sdpa}. */
public enum SdpBackend {
  /** libtorch chooses (flash attention on CPU and GPU where it applies, else math). */
  AUTO,
  /** The plain composite {@code softmax(q k^T * scale + mask) v}, computed here in fp32 or wider. */
  MATH,
  /** Flash attention (CPU and CUDA). */
  FLASH,
  /** Memory-efficient attention (CUDA). */
  EFFICIENT,
  /** cuDNN attention (CUDA). */
  CUDNN
}
