package io.cachedit.cache;

/** A cache setting is invalid: names the field, the value and the rule it breaks. */
public final class ConfigException extends IllegalArgumentException {
  private static final long serialVersionUID = 1L;
  private final String field;

  public ConfigException(String field, Object value, String rule) {
    super(field + " = " + value + ": " + rule);
    this.field = field;
  }

  public ConfigException(String message) {
    super(message);
    this.field = null;
  }

  /** The config-file key of the offending field, or null for a cross-field or file-level problem. */
  public String field() {
    return field;
  }
}
