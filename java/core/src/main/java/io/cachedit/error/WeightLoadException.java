package io.cachedit.error;

/** A weights file or model folder cannot be used: names the file, the tensor key and what is wrong. */
public class WeightLoadException extends CacheDitException {
  private static final long serialVersionUID = 1L;

  public WeightLoadException(String message) {
    super(message);
  }

  public WeightLoadException(String message, Throwable cause) {
    super(message, cause);
  }
}
