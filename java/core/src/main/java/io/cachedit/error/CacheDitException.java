package io.cachedit.error;

/**
 * The base of every exception cachedit throws about something outside the caller's Java code: a
 * configuration value, a weights file, a model, a native kernel, a rank of a parallel group. The
 * subclasses say which; the message always names the field, file, tensor or rank and how to fix it.
 *
 * <p>Misuse of a Java method itself (a null argument, a tensor of the wrong shape passed by code, an
 * object used after {@code close()}) is reported with the JDK's {@link IllegalArgumentException} and
 * {@link IllegalStateException}, as everywhere in Java.
 */
public class CacheDitException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  public CacheDitException(String message) {
    super(message);
  }

  public CacheDitException(String message, Throwable cause) {
    super(message, cause);
  }
}
