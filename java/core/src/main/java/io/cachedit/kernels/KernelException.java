package io.cachedit.kernels;

/** A native kernel refused a call or a CUDA call failed; the message carries the native reason. */
public final class KernelException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  KernelException(String message) {
    super(message);
  }
}
