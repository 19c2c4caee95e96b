package io.cachedit.error;

/**
 * A model is not supported where it was used: no cache adapter or loader is registered for its class,
 * an adapter does not fit it, or it lacks something a feature needs. The message lists what is.
 */
public class UnsupportedModelException extends CacheDitException {
  private static final long serialVersionUID = 1L;

  public UnsupportedModelException(String message) {
    super(message);
  }
}
