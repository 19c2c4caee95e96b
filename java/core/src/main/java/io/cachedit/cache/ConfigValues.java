package io.cachedit.cache;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/** Converts values parsed from YAML/JSON to a field's type, rejecting anything else by name. */
final class ConfigValues {
  private ConfigValues() {}

  static Object coerce(CacheField field, Object value) {
    if (value == null) {
      return null;
    }
    Class<?> type = field.type;
    if (type == Integer.class) {
      return integer(field.key, value);
    }
    if (type == Double.class) {
      if (value instanceof Number n) {
        return n.doubleValue();
      }
      throw new ConfigException(field.key, value, "must be a number");
    }
    if (type == Boolean.class) {
      return bool(field.key, value);
    }
    if (type == StepMask.class) {
      if (value instanceof String s) {
        return StepMask.parse(s);
      }
      if (value instanceof List<?> list) {
        int[] bits = new int[list.size()];
        for (int i = 0; i < bits.length; i++) {
          bits[i] = integer(field.key, list.get(i));
        }
        return StepMask.of(bits);
      }
      throw new ConfigException(field.key, value, "must be a policy name, a string of 0/1 digits or a list of 0/1");
    }
    if (type == List.class) {
      if (!(value instanceof List<?> list)) {
        throw new ConfigException(field.key, value, "must be a list of integers");
      }
      List<Integer> ids = new ArrayList<>();
      for (Object o : list) {
        ids.add(integer(field.key, o));
      }
      return ids;
    }
    if (type.isEnum()) {
      if (value instanceof String s) {
        for (Object c : type.getEnumConstants()) {
          if (((Enum<?>) c).name().equalsIgnoreCase(s.trim())) {
            return c;
          }
        }
      }
      List<String> names = new ArrayList<>();
      for (Object c : type.getEnumConstants()) {
        names.add(((Enum<?>) c).name().toLowerCase(Locale.ROOT));
      }
      throw new ConfigException(field.key, value, "must be one of " + names);
    }
    throw new ConfigException(field.key, value, "unsupported setting type");
  }

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

  static boolean bool(String key, Object value) {
    if (value instanceof Boolean b) {
      return b;
    }
    throw new ConfigException(key, value, "must be true or false");
  }
}
