package io.cachedit.models.common;

/** The scaled dot-product attention kernels {@link Sdpa} can run: libtorch's, and cachedit's under AUTO. */
public enum SdpBackend {
  /** cachedit's attention kernel for short unmasked CPU fp32 self-attention, else libtorch chooses (flash attention where it applies, else math). */
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
