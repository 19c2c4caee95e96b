package io.cachedit.error;

import java.nio.file.Path;

/**
 * A setting is invalid: names the file it came from (when there is one), the key, the value and the
 * values it may take. Thrown by config builders, the YAML/JSON loaders and the command line.
 */
public class ConfigException extends CacheDitException {
  private static final long serialVersionUID = 1L;
  private final String field;
  private final String file;

  /** {@code field = value: rule}, e.g. {@code residual_diff_threshold = NaN: must be a finite number}. */
  public ConfigException(String field, Object value, String rule) {
    this(null, field, field + " = " + value + ": " + rule);
  }

  /** A cross-field or file-level problem (no single key). */
  public ConfigException(String message) {
    this(null, null, message);
  }

  /** An error about {@code field} whose message is already complete (it should name the field). */
  public static ConfigException forField(String field, String message) {
    return new ConfigException(null, field, message);
  }

  private ConfigException(String file, String field, String message) {
    super(file == null ? message : file + ": " + message);
    this.field = field;
    this.file = file;
  }

  /** The config-file key of the offending field, or null for a cross-field or file-level problem. */
  public String field() {
    return field;
  }

  /** The file the setting came from, or null. */
  public String file() {
    return file;
  }

  /** This error as read from {@code file}: the message starts with the file, the key is kept. */
  public ConfigException inFile(Path file) {
    if (this.file != null) {
      return this;
    }
    String prefix = String.valueOf(file);
    ConfigException e = new ConfigException(prefix, field, getMessage());
    e.setStackTrace(getStackTrace());
    return e;
  }
}
