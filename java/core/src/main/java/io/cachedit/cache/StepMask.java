package io.cachedit.cache;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import io.cachedit.error.ConfigException;

/**
 * A steps computation mask (SCM, docs/algorithms.md section 7): per denoising step, 1 = must compute, 0 = may be cached
 * (unconditionally with {@link StepsPolicy#STATIC}, through the normal gates with
 * {@link StepsPolicy#DYNAMIC}). Either explicit bits, or a named policy ({@code slow}, {@code medium},
 * {@code fast}, {@code ultra}, or ours: {@code quadratic:N}) resolved for each generation's step count.
 *
 * <p>{@code quadratic:N} computes exactly N steps, at {@code round(T (k/N)^2)} for k = 0..N-1 (bumped
 * to keep them distinct): dense while the image forms, gaps growing linearly after, and no forced last
 * step. On the bundled model it beats cache-dit's bins at the same computed-step count (docs/caching.md).
 */
public final class StepMask {
  /** The predefined policies. */
  public static final List<String> POLICIES = List.of("slow", "medium", "fast", "ultra");
  /** Prefix of our parametrised policy {@code quadratic:N}. */
  private static final String QUADRATIC = "quadratic:";

  private final int[] bits;      // explicit mask, or null
  private final String policy;   // named policy, or null

  private static final String KEY = "steps_computation_mask";

  /** Every mask error is a config error of {@code steps_computation_mask}: YAML loaders add the file. */
  private static ConfigException mask(String message) {
    return ConfigException.forField(KEY, message);
  }

  private StepMask(int[] bits, String policy) {
    this.bits = bits;
    this.policy = policy;
  }

  /** An explicit mask of 0/1 values. */
  public static StepMask of(int... bits) {
    if (bits == null || bits.length == 0) {
      throw mask("steps_computation_mask must not be empty");
    }
    for (int i = 0; i < bits.length; i++) {
      if (bits[i] != 0 && bits[i] != 1) {
        throw mask("steps_computation_mask must hold only 0 and 1, got " + bits[i]
            + " at step " + i);
      }
    }
    return new StepMask(bits.clone(), null);
  }

  /** A mask from a string of digits such as {@code "1111011"}. */
  public static StepMask parse(String digits) {
    String s = digits.trim();
    String lower = s.toLowerCase(Locale.ROOT);
    if (POLICIES.contains(lower) || lower.startsWith(QUADRATIC)) {
      return policy(s);
    }
    int[] bits = new int[s.length()];
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      if (c != '0' && c != '1') {
        throw mask("steps_computation_mask \"" + digits
            + "\" must be 0/1 digits, one of " + POLICIES + " or quadratic:N");
      }
      bits[i] = c - '0';
    }
    return of(bits);
  }

  /** A named policy, resolved per step count (see {@link #policyMask}). */
  public static StepMask policy(String name) {
    String p = name == null ? "" : name.trim().toLowerCase(Locale.ROOT);
    if (!POLICIES.contains(p)) {
      quadraticSteps(p);  // validates
    }
    return new StepMask(null, p);
  }

  /** The N of {@code quadratic:N}; anything else is rejected with the list of policies. */
  private static int quadraticSteps(String p) {
    if (!p.startsWith(QUADRATIC)) {
      throw mask("unknown steps mask policy \"" + p + "\"; use one of " + POLICIES
          + " or quadratic:N (N computed steps)");
    }
    try {
      int n = Integer.parseInt(p.substring(QUADRATIC.length()));
      if (n < 1) {
        throw new NumberFormatException();
      }
      return n;
    } catch (NumberFormatException e) {
      throw mask("steps mask policy \"" + p + "\": N in quadratic:N must be a positive"
          + " integer (the number of computed steps)");
    }
  }

  /** The {@code quadratic:N} mask: N computed steps at {@code round(T (k/N)^2)}, kept distinct. */
  public static int[] quadraticMask(int computedSteps, int totalSteps) {
    if (computedSteps < 1 || computedSteps > totalSteps) {
      throw mask("quadratic:" + computedSteps + " needs 1.." + totalSteps
          + " computed steps for a " + totalSteps + "-step generation");
    }
    int[] mask = new int[totalSteps];
    int last = -1;
    for (int k = 0; k < computedSteps; k++) {
      double f = (double) k / computedSteps;
      int at = Math.max((int) Math.round(totalSteps * f * f), last + 1);
      mask[at] = 1;
      last = at;
    }
    return mask;
  }

  /** An explicit mask built from compute/cache bins (see {@link #binsToMask}). */
  public static StepMask fromBins(int[] computeBins, int[] cacheBins, int totalSteps) {
    return of(binsToMask(computeBins, cacheBins, totalSteps));
  }

  public boolean isPolicy() {
    return policy != null;
  }

  /** The policy name, or null for an explicit mask. */
  public String policyName() {
    return policy;
  }

  /** Length of an explicit mask, or -1 for a policy. */
  public int length() {
    return bits == null ? -1 : bits.length;
  }

  /** The mask for a generation of {@code totalSteps} steps. */
  public int[] resolve(int totalSteps) {
    if (policy != null) {
      return policyMask(policy, totalSteps);
    }
    if (bits.length != totalSteps) {
      throw mask("steps_computation_mask has " + bits.length
          + " steps but the generation runs " + totalSteps + " steps; give a mask of that length or a policy");
    }
    return bits.clone();
  }

  /** Digits of an explicit mask, or the policy name. */
  @Override
  public String toString() {
    if (policy != null) {
      return policy;
    }
    StringBuilder sb = new StringBuilder(bits.length);
    for (int b : bits) {
      sb.append(b);
    }
    return sb.toString();
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof StepMask m && Arrays.equals(bits, m.bits) && java.util.Objects.equals(policy, m.policy);
  }

  @Override
  public int hashCode() {
    return Arrays.hashCode(bits) * 31 + java.util.Objects.hashCode(policy);
  }

  // ---------------------------------------------------------------------------------------------
  // bin arithmetic (docs/algorithms.md section 7), ported literally and pinned by its table in StepMaskTest
  // ---------------------------------------------------------------------------------------------

  /**
   * Alternates runs of 1s (compute bins) and 0s (cache bins), starting with compute, until
   * {@code totalSteps} values (or, with {@code totalSteps <= 0}, until the bins are used up). Explicit
   * bins do not force the last step to 1.
   */
  public static int[] binsToMask(int[] computeBins, int[] cacheBins, int totalSteps) {
    if (computeBins == null || cacheBins == null || computeBins.length == 0) {
      throw mask("compute bins must not be empty");
    }
    int sum = 0;
    for (int b : computeBins) {
      if (b < 0) throw mask("compute bins must be >= 0, got " + b);
      sum += b;
    }
    for (int b : cacheBins) {
      if (b < 0) throw mask("cache bins must be >= 0, got " + b);
      sum += b;
    }
    int total = totalSteps <= 0 ? sum : totalSteps;
    if (sum < total) {
      throw mask("compute + cache bins cover " + sum + " steps, fewer than total steps "
          + total);
    }
    int[] mask = new int[total];
    int len = 0;
    for (int i = 0; len < total; i++) {
      if (i < computeBins.length) {
        for (int k = 0; k < computeBins[i] && len < total; k++) {
          mask[len++] = 1;
        }
      }
      if (i < cacheBins.length) {
        for (int k = 0; k < cacheBins[i] && len < total; k++) {
          mask[len++] = 0;
        }
      }
    }
    return mask;
  }

  /** The mask of a predefined policy for {@code totalSteps} steps (the last step always computes). */
  public static int[] policyMask(String policy, int totalSteps) {
    String p = policy == null ? "" : policy.trim().toLowerCase(Locale.ROOT);
    if (p.startsWith(QUADRATIC)) {
      return quadraticMask(quadraticSteps(p), totalSteps);
    }
    if (!POLICIES.contains(p)) {
      throw mask("unknown steps mask policy \"" + policy + "\"; use one of " + POLICIES);
    }
    int t = totalSteps;
    if (t < 8 && t != 4 && t != 6) {
      throw mask("a steps mask policy needs 4, 6 or at least 8 steps, got " + t);
    }
    List<Integer> compute;
    List<Integer> cache;
    if (t < 8) {
      compute = list(t == 4 ? new int[] {2, 1} : new int[] {3, 1});
      cache = list(t == 4 ? new int[] {1} : new int[] {2});
    } else if (t < 16) {
      int[][] tables = shortTables(p, t);
      compute = list(tables[0]);
      cache = list(tables[1]);
    } else {
      int[][] base = baseTables(p);
      compute = list(base[0]);
      cache = list(base[1]);
      if (t > 28) {
        grow(compute, cache, base[0], base[1], t);
      }
    }
    truncate(compute, cache, t);
    int[] mask = binsToMask(array(compute), array(cache), t);
    mask[t - 1] = 1;
    return mask;
  }

  private static int[][] baseTables(String p) {
    return switch (p) {
      case "slow" -> new int[][] {{8, 3, 3, 2, 1, 1}, {1, 2, 2, 2, 3}};
      case "medium" -> new int[][] {{6, 2, 2, 2, 2, 1}, {1, 3, 3, 3, 3}};
      case "fast" -> new int[][] {{6, 1, 1, 1, 1, 1}, {1, 3, 4, 5, 4}};
      default -> new int[][] {{4, 1, 1, 1, 1}, {2, 5, 6, 7}};
    };
  }

  private static int[][] shortTables(String p, int t) {
    if (t == 9) {
      return switch (p) {
        case "slow" -> new int[][] {{5, 2, 1}, {1}};
        case "medium" -> new int[][] {{5, 1, 1}, {1, 1}};
        case "fast" -> new int[][] {{4, 1, 1}, {1, 2}};
        default -> new int[][] {{3, 1, 1}, {2, 2}};
      };
    }
    if (t == 8) {
      return switch (p) {
        case "slow" -> new int[][] {{5, 1, 1}, {1}};
        case "medium" -> new int[][] {{4, 1, 1}, {1, 1}};
        case "fast" -> new int[][] {{3, 1, 1}, {1, 2}};
        default -> new int[][] {{2, 1, 1}, {2, 2}};
      };
    }
    return switch (p) {
      case "slow" -> new int[][] {{4, 2, 2, 2, 1}, {1, 1, 1, 1}};
      case "medium" -> new int[][] {{4, 2, 1, 1, 1}, {1, 1, 2, 2}};
      case "fast" -> new int[][] {{3, 1, 1, 1, 1}, {1, 2, 2, 3}};
      default -> new int[][] {{2, 1, 1, 1, 1}, {1, 2, 3, 3}};
    };
  }

  private static void grow(List<Integer> compute, List<Integer> cache, int[] origCompute, int[] origCache, int t) {
    double ratio = t / 28.0;
    int n = Math.min(compute.size(), cache.size());
    outer:
    while (sum(compute) + sum(cache) < t) {
      for (int i = 0; i < n; i++) {
        compute.set(i, compute.get(i) + Math.max((int) Math.floor(origCompute[i] * ratio * 0.5), 1));
        if (sum(compute) + sum(cache) >= t) {
          break outer;
        }
        cache.set(i, cache.get(i) + Math.max((int) Math.floor(origCache[i] * ratio * 0.5), 1));
        if (sum(compute) + sum(cache) >= t) {
          break outer;
        }
      }
      if (sum(compute) + sum(cache) < t) {
        compute.set(compute.size() - 1, compute.get(compute.size() - 1) + 1);
      }
    }
  }

  private static void truncate(List<Integer> compute, List<Integer> cache, int t) {
    while (sum(compute) + sum(cache) > t) {
      if (!cache.isEmpty()) {
        int last = cache.size() - 1;
        cache.set(last, cache.get(last) - 1);
        if (cache.get(last) == 0) {
          cache.remove(last);
        }
      }
      if (sum(compute) + sum(cache) <= t) {
        break;
      }
      if (!compute.isEmpty()) {
        int last = compute.size() - 1;
        compute.set(last, compute.get(last) - 1);
        if (compute.get(last) == 0) {
          compute.remove(last);
        }
      }
    }
  }

  private static int sum(List<Integer> values) {
    int s = 0;
    for (int v : values) {
      s += v;
    }
    return s;
  }

  private static List<Integer> list(int[] values) {
    List<Integer> l = new ArrayList<>(values.length);
    for (int v : values) {
      l.add(v);
    }
    return l;
  }

  private static int[] array(List<Integer> values) {
    return values.stream().mapToInt(Integer::intValue).toArray();
  }
}
