package io.cachedit.io;

/** A weights file or folder cannot be read: names the file, the tensor key and what is wrong. */
public final class WeightLoadException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  public WeightLoadException(String message) {
    super(message);
  }

  public WeightLoadException(String message, Throwable cause) {
    super(message, cause);
  }
}
