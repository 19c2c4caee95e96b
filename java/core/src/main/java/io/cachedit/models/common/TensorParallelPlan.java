package io.cachedit.models.common;

import io.cachedit.error.ConfigException;
import io.cachedit.io.JsonConfig;
import io.cachedit.io.WeightSharding;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import java.util.regex.Pattern;

/**
 * Which layers of a model class are split across a tensor-parallel group, and how: data each model
 * class declares (as cache-dit's tensor-parallel planners, Megatron-style column / row splits),
 * applied at load time by its {@link TensorParallel}. A column-split linear keeps a contiguous block
 * of output features (attention heads, MLP hidden units) and its output stays split; the row-split
 * linear after it keeps the matching input features and its partial outputs are summed over the
 * group. Everything not named stays whole on every rank.
 *
 * @param model the model class, for messages
 * @param rules module-path patterns and their styles, first match wins
 * @param counts what the group size must divide, by config key, from a config.json (the check runs
 *     before any weight is read or any rank waits for another)
 */
public record TensorParallelPlan(String model, List<Rule> rules, Function<JsonConfig, Map<String, Long>> counts) {
  /** How a module is split. */
  public enum Style {
    /** Linear split by output features; the output stays split (the next layers work on the shard). */
    COLWISE,
    /** Linear split by output features; the outputs are gathered, whole on every rank (adaLN modulations). */
    COLWISE_GATHERED,
    /** Linear split by input features; the partial outputs are summed over the group, then the bias added. */
    ROWWISE,
    /** A 1-D parameter (a norm's weight) over split features: cut like a column split's bias. */
    FEATURES
  }

  /**
   * One rule. {@code pattern} is a module path whose segments may be {@code *} (any one segment) or
   * {@code {a,b}} (either); {@code parts} says the split dimension is the concatenation of parts in
   * these proportions, each split on its own (empty: one part).
   */
  public record Rule(String pattern, Style style, int[] parts, Pattern regex) {
    public Rule {
      parts = parts.clone();
    }
  }

  public TensorParallelPlan {
    rules = List.copyOf(rules);
  }

  /** A rule for {@code pattern}. */
  public static Rule rule(String pattern, Style style, int... parts) {
    return new Rule(pattern, style, parts, compile(pattern));
  }

  /** Linears at {@code pattern} split by output features, their outputs left split. */
  public static Rule columns(String pattern, int... parts) {
    return rule(pattern, Style.COLWISE, parts);
  }

  /** Linears at {@code pattern} split by input features, their partial outputs summed. */
  public static Rule rows(String pattern, int... parts) {
    return rule(pattern, Style.ROWWISE, parts);
  }

  /** Linears at {@code pattern} split by output features, their outputs gathered whole. */
  public static Rule gathered(String pattern) {
    return rule(pattern, Style.COLWISE_GATHERED);
  }

  /** 1-D parameters at {@code pattern} over split features. */
  public static Rule features(String pattern) {
    return rule(pattern, Style.FEATURES);
  }

  /** The common count: a config's attention heads under {@code key} (its diffusers default {@code orElse}). */
  public static Function<JsonConfig, Map<String, Long>> heads(String key, int orElse) {
    return c -> Map.of("attention heads (" + key + ")", (long) c.getInt(key, orElse));
  }

  private static Pattern compile(String pattern) {
    StringBuilder re = new StringBuilder();
    for (String segment : pattern.split("\\.(?![^{]*})")) {
      if (re.length() > 0) {
        re.append("\\.");
      }
      if (segment.equals("*")) {
        re.append("[^.]+");
      } else if (segment.startsWith("{") && segment.endsWith("}")) {
        re.append("(?:");
        String[] alts = segment.substring(1, segment.length() - 1).split(",");
        for (int i = 0; i < alts.length; i++) {
          re.append(i == 0 ? "" : "|").append(Pattern.quote(alts[i].trim()));
        }
        re.append(")");
      } else {
        re.append(Pattern.quote(segment));
      }
    }
    return Pattern.compile(re.toString());
  }

  /** The style of the module at {@code modulePath}, or null when it stays whole. */
  public Style style(String modulePath) {
    Rule r = rule(modulePath);
    return r == null ? null : r.style();
  }

  private Rule rule(String modulePath) {
    for (Rule r : rules) {
      if (r.regex().matcher(modulePath).matches()) {
        return r;
      }
    }
    return null;
  }

  /**
   * Rank {@code rank}'s part of parameter {@code key} (checkpoint shape {@code shape}) on a group of
   * {@code size}, or null when it stays whole.
   *
   * @throws IllegalArgumentException when the split dimension does not divide into {@code size} parts
   */
  public WeightSharding.Slice slice(String key, long[] shape, int rank, int size) {
    if (size == 1) {
      return null;
    }
    int dot = key.lastIndexOf('.');
    String module = dot < 0 ? "" : key.substring(0, dot);
    String param = key.substring(dot + 1);
    Rule r = rule(module);
    if (r == null) {
      return null;
    }
    int dim;
    if (r.style() == Style.ROWWISE) {
      if (!param.equals("weight")) {
        return null;  // the bias is added once, after the sum
      }
      dim = 1;
    } else {
      dim = 0;
    }
    if (shape.length <= dim) {
      throw new IllegalArgumentException(key + " " + Arrays.toString(shape) + " cannot be split along dim " + dim
          + " as " + model + "'s tensor-parallel plan says (" + r.pattern() + ": " + r.style() + ")");
    }
    int[] parts = r.parts().length == 0 ? new int[] {1} : r.parts();
    long total = 0;
    for (int p : parts) {
      total += p;
    }
    long length = shape[dim];
    if (length % total != 0) {
      throw new IllegalArgumentException(key + " has " + length + " features along dim " + dim + ", not parts "
          + Arrays.toString(parts) + " as " + model + "'s tensor-parallel plan expects");
    }
    long[] starts = new long[parts.length];
    long[] lengths = new long[parts.length];
    long offset = 0;
    for (int i = 0; i < parts.length; i++) {
      long partLength = length / total * parts[i];
      if (partLength % size != 0) {
        throw new IllegalArgumentException(key + ": " + partLength + " features along dim " + dim + " do not split "
            + "into tp_size = " + size + " equal shards");
      }
      lengths[i] = partLength / size;
      starts[i] = offset + rank * lengths[i];
      offset += partLength;
    }
    return new WeightSharding.Slice(dim, starts, lengths);
  }

  /** The group sizes (1 to {@code max}) every count of {@code config} divides into. */
  public List<Integer> validSizes(JsonConfig config, int max) {
    Map<String, Long> c = counts.apply(config);
    List<Integer> sizes = new ArrayList<>();
    for (int t = 1; t <= max; t++) {
      boolean ok = true;
      for (long n : c.values()) {
        ok &= n % t == 0;
      }
      if (ok) {
        sizes.add(t);
      }
    }
    return sizes;
  }

  /**
   * Checks that {@code tpSize} splits every count of {@code config}: a {@link ConfigException} for
   * {@code tp_size} naming the count and listing the valid sizes otherwise.
   */
  public void check(JsonConfig config, int tpSize) {
    Map<String, Long> c = new LinkedHashMap<>(counts.apply(config));
    for (Map.Entry<String, Long> e : c.entrySet()) {
      if (e.getValue() % tpSize != 0) {
        long smallest = Long.MAX_VALUE;
        for (long n : c.values()) {
          smallest = Math.min(smallest, n);
        }
        List<Integer> valid = validSizes(config, (int) Math.min(smallest, 4096));
        throw new ConfigException("tp_size", tpSize, model + " has " + e.getValue() + " " + e.getKey()
            + ", which do not split into " + tpSize + " equal shards; valid tp sizes: "
            + String.join(", ", valid.stream().map(String::valueOf).toList()));
      }
    }
  }
}
