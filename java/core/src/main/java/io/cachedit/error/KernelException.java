package io.cachedit.error;

/** A native kernel refused a call or a CUDA call failed; the message carries the native reason. */
public class KernelException extends CacheDitException {
  private static final long serialVersionUID = 1L;

  public KernelException(String message) {
    super(message);
  }
}
