package io.cachedit.cache;

import io.cachedit.error.ConfigException;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/** Converts values parsed from YAML/JSON to a field's type, rejecting anything else by name. */
final class ConfigValues {
  private ConfigValues() {}

  static int integer(String key, Object value) {
    if (value instanceof Integer i) {
      return i;
    }
    if (value instanceof Number n && n.doubleValue() == Math.rint(n.doubleValue())
        && Math.abs(n.doubleValue()) <= Integer.MAX_VALUE) {
      return n.intValue();
    }
    throw new ConfigException(key, value, "must be an integer");
  }

  static double number(String key, Object value) {
    if (value instanceof Number n) {
      return n.doubleValue();
    }
    throw new ConfigException(key, value, "must be a number");
  }

  static boolean bool(String key, Object value) {
    if (value instanceof Boolean b) {
      return b;
    }
    throw new ConfigException(key, value, "must be true or false");
  }

  static List<Integer> integers(String key, Object value) {
    if (!(value instanceof List<?> list)) {
      throw new ConfigException(key, value, "must be a list of integers");
    }
    List<Integer> ids = new ArrayList<>();
    for (Object o : list) {
      ids.add(integer(key, o));
    }
    return ids;
  }

  static StepMask mask(String key, Object value) {
    if (value instanceof String s) {
      return StepMask.parse(s);
    }
    if (value instanceof List<?> list) {
      int[] bits = new int[list.size()];
      for (int i = 0; i < bits.length; i++) {
        bits[i] = integer(key, list.get(i));
      }
      return StepMask.of(bits);
    }
    throw new ConfigException(key, value, "must be a policy name, a string of 0/1 digits or a list of 0/1");
  }

  static <E extends Enum<E>> E enumValue(String key, Object value, Class<E> type) {
    if (value instanceof String s) {
      for (E c : type.getEnumConstants()) {
        if (c.name().equalsIgnoreCase(s.trim())) {
          return c;
        }
      }
    }
    List<String> names = new ArrayList<>();
    for (E c : type.getEnumConstants()) {
      names.add(c.name().toLowerCase(Locale.ROOT));
    }
    throw new ConfigException(key, value, "must be one of " + names);
  }
}
