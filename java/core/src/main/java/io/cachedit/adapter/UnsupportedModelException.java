package io.cachedit.adapter;

/** No adapter is registered for a model class, or an adapter does not fit the model. */
public final class UnsupportedModelException extends IllegalArgumentException {
  private static final long serialVersionUID = 1L;

  public UnsupportedModelException(String message) {
    super(message);
  }
}
