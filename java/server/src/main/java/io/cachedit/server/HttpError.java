package io.cachedit.server;

import io.cachedit.error.CacheDitException;

/**
 * A request the server refuses: the HTTP status, the request field at fault (or null) and a message
 * that names the field, the allowed values and the fix.
 */
public final class HttpError extends CacheDitException {
  private static final long serialVersionUID = 1L;

  private final int status;
  private final String field;
  private final long retryAfterSeconds;

  public HttpError(int status, String field, String message) {
    this(status, field, message, 0);
  }

  public HttpError(int status, String field, String message, long retryAfterSeconds) {
    super(message);
    this.status = status;
    this.field = field;
    this.retryAfterSeconds = retryAfterSeconds;
  }

  /** 400 for {@code field}. */
  public static HttpError badField(String field, String message) {
    return new HttpError(400, field, message);
  }

  public int status() {
    return status;
  }

  /** The request field at fault, or null. */
  public String field() {
    return field;
  }

  /** Seconds a client should wait before retrying (429, 503), 0 when not applicable. */
  public long retryAfterSeconds() {
    return retryAfterSeconds;
  }
}
