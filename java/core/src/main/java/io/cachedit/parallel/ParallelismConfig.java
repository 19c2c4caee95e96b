package io.cachedit.parallel;

import io.cachedit.error.ConfigException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.OptionalInt;

/**
 * How one generation is split across processes (docs/parallelism.md), with the reference's fields
 * and rules. Immutable; sizes of 1 or unset mean "not split this way".
 *
 * <ul>
 *   <li>{@code ulysses_size}: ranks that exchange attention heads (Ulysses all-to-all);</li>
 *   <li>{@code ring_size}: ranks that rotate keys and values (ring attention); both together is USP,
 *       ring groups of Ulysses groups;</li>
 *   <li>{@code tp_size}: tensor parallelism (weights split; not in this version);</li>
 *   <li>{@code ulysses_anything}: split every sequence unevenly where needed, without padding, and
 *       exchange the ranks' lengths on every call; without it the split is even, with no exchange,
 *       whenever the group divides the length, and uneven otherwise (where the reference refuses);</li>
 *   <li>{@code ulysses_float8}: queries, values and outputs travel as float8 e4m3 with per-row scales
 *       (keys stay 16-bit);</li>
 *   <li>{@code ulysses_async}: value, query and key exchanges overlap the projections that follow;</li>
 *   <li>{@code ring_rotate_method}: {@code p2p} (default) or {@code allgather};
 *       {@code ring_convert_to_fp32}: merge the blocks' partial results in fp32 (default true).</li>
 * </ul>
 *
 * @param backend the engine; AUTO picks it from the sizes
 * @param ulyssesSize Ulysses degree, empty = 1
 * @param ringSize ring degree, empty = 1
 * @param tpSize tensor-parallel degree, empty = 1
 * @param cfgSize classifier-free-guidance degree (cond and uncond on different ranks), empty = 1
 * @param ulyssesAnything uneven sequence lengths
 * @param ulyssesFloat8 FP8 all-to-all
 * @param ulyssesAsync overlap the exchanges with the projections
 * @param ringRotateMethod how the ring moves keys and values
 * @param ringConvertToFp32 merge ring results in fp32
 * @param extraParallelModules components (by name) to parallelise besides the transformer
 */
public record ParallelismConfig(ParallelismBackend backend, OptionalInt ulyssesSize, OptionalInt ringSize,
    OptionalInt tpSize, OptionalInt cfgSize, boolean ulyssesAnything, boolean ulyssesFloat8, boolean ulyssesAsync,
    RingRotateMethod ringRotateMethod, boolean ringConvertToFp32, List<String> extraParallelModules) {

  public ParallelismConfig {
    backend = backend == null ? ParallelismBackend.AUTO : backend;
    ulyssesSize = size("ulysses_size", ulyssesSize);
    ringSize = size("ring_size", ringSize);
    tpSize = size("tp_size", tpSize);
    cfgSize = size("cfg_size", cfgSize);
    ringRotateMethod = ringRotateMethod == null ? RingRotateMethod.P2P : ringRotateMethod;
    extraParallelModules = extraParallelModules == null ? List.of() : List.copyOf(extraParallelModules);
    int u = ulyssesSize.orElse(1);
    int r = ringSize.orElse(1);
    if (ulyssesAnything && r > 1) {
      throw new ConfigException("ulysses_anything", true, "cannot be combined with ring_size > 1: ring attention "
          + "rotates blocks of equal length");
    }
    if (u <= 1 && (ulyssesAnything || ulyssesFloat8 || ulyssesAsync)) {
      throw new ConfigException("ulysses_size", ulyssesSize.isPresent() ? ulyssesSize.getAsInt() : null,
          "ulysses_anything, ulysses_float8 and ulysses_async need ulysses_size > 1");
    }
    if (cfgSize.orElse(1) > 2) {
      throw new ConfigException("cfg_size", cfgSize.getAsInt(), "must be 1 or 2 (cond and uncond)");
    }
    ParallelismBackend resolved = resolve(backend, u, r, tpSize.orElse(1));
    if (resolved == ParallelismBackend.NONE && cfgSize.orElse(1) == 1) {
      throw new ConfigException("no parallelism is enabled: set ulysses_size, ring_size, tp_size or cfg_size above 1");
    }
  }

  private static OptionalInt size(String key, OptionalInt v) {
    if (v == null || v.isEmpty()) {
      return OptionalInt.empty();
    }
    if (v.getAsInt() < 1) {
      throw new ConfigException(key, v.getAsInt(), "must be >= 1");
    }
    return v;
  }

  private static ParallelismBackend resolve(ParallelismBackend backend, int u, int r, int t) {
    boolean cp = u > 1 || r > 1;
    boolean tp = t > 1;
    ParallelismBackend expected = cp && tp ? ParallelismBackend.NATIVE_HYBRID : cp ? ParallelismBackend.CACHE_DIT
        : tp ? ParallelismBackend.NATIVE_PYTORCH : ParallelismBackend.NONE;
    if (backend != ParallelismBackend.AUTO && backend != expected) {
      throw new ConfigException("backend", backend.name().toLowerCase(Locale.ROOT), "does not fit the sizes: "
          + (expected == ParallelismBackend.NONE ? "nothing is split" : "they need " + expected.name()
          .toLowerCase(Locale.ROOT)));
    }
    return expected;
  }

  /** Ulysses degree (1 when unset). */
  public int ulysses() {
    return ulyssesSize.orElse(1);
  }

  /** Ring degree (1 when unset). */
  public int ring() {
    return ringSize.orElse(1);
  }

  /** Tensor-parallel degree (1 when unset). */
  public int tp() {
    return tpSize.orElse(1);
  }

  /** CFG degree (1 when unset). */
  public int cfg() {
    return cfgSize.orElse(1);
  }

  /** Ranks of one context-parallel group: ulysses x ring. */
  public int contextParallelSize() {
    return ulysses() * ring();
  }

  /** Ranks the whole config needs: ulysses x ring x tp x cfg. */
  public int worldSize() {
    return contextParallelSize() * tp() * cfg();
  }

  /** The backend AUTO resolves to. */
  public ParallelismBackend resolvedBackend() {
    return resolve(backend, ulysses(), ring(), tp());
  }

  public boolean contextParallel() {
    return contextParallelSize() > 1;
  }

  /** Ulysses and ring together. */
  public boolean usp() {
    return ulysses() > 1 && ring() > 1;
  }

  /**
   * Checks the config against the group it will run on, before any collective: the sizes must
   * multiply to the world size, USP needs at least 4 ranks and hybrid CP x TP at least 4 (8 with USP).
   */
  public void validateFor(int world) {
    if (worldSize() != world) {
      throw new ConfigException("ulysses_size x ring_size x tp_size x cfg_size = " + ulysses() + " x " + ring() + " x "
          + tp() + " x " + cfg() + " = " + worldSize() + " ranks, but the group has " + world
          + " (WORLD_SIZE); make them equal");
    }
    if (usp() && world < 4) {
      throw new ConfigException("ulysses_size and ring_size together (USP) need at least 4 ranks, got " + world);
    }
    if (resolvedBackend() == ParallelismBackend.NATIVE_HYBRID && world < (usp() ? 8 : 4)) {
      throw new ConfigException("context and tensor parallelism together need at least " + (usp() ? 8 : 4)
          + " ranks, got " + world);
    }
  }

  /** The reference's short tag, e.g. {@code Ulysses2_UAA_F8_} or {@code Ulysses2_Ring2_}. */
  public String strify() {
    StringBuilder sb = new StringBuilder();
    ulyssesSize.ifPresent(u -> sb.append("Ulysses").append(u).append('_'));
    ringSize.ifPresent(r -> sb.append("Ring").append(r).append('_'));
    if (ulyssesAnything) {
      sb.append("UAA_");
      if (ulyssesFloat8) {
        sb.append("F8_");
      }
    } else if (ulyssesFloat8) {
      sb.append("UF8_");
    }
    if (ulyssesAsync) {
      sb.append("UAS_");
    }
    tpSize.ifPresent(t -> sb.append("TP").append(t).append('_'));
    cfgSize.ifPresent(c -> sb.append("CFG").append(c).append('_'));
    return sb.toString();
  }

  @Override
  public String toString() {
    return strify();
  }

  /** A builder with nothing split. */
  public static Builder builder() {
    return new Builder();
  }

  /**
   * The command line's form ({@code --parallel <spec>}): a comma list of {@code ulysses=N},
   * {@code ring=N}, {@code tp=N}, {@code cfg=N} and the flags {@code anything}, {@code float8},
   * {@code async}, {@code allgather} (ring rotation) and {@code ring-bf16} (merge in the model's dtype),
   * e.g. {@code ulysses=2,anything,float8}.
   */
  public static ParallelismConfig parse(String spec) {
    if (spec == null || spec.isBlank()) {
      throw new ConfigException("--parallel", spec, "is empty; e.g. ulysses=2 or ulysses=2,ring=2 or ulysses=3,anything");
    }
    Builder b = builder();
    for (String raw : spec.split(",")) {
      String part = raw.trim().toLowerCase(Locale.ROOT);
      int eq = part.indexOf('=');
      String key = eq < 0 ? part : part.substring(0, eq).trim();
      String value = eq < 0 ? null : part.substring(eq + 1).trim();
      switch (key) {
        case "ulysses" -> b.ulysses(count("ulysses", value));
        case "ring" -> b.ring(count("ring", value));
        case "tp" -> b.tp(count("tp", value));
        case "cfg" -> b.cfg(count("cfg", value));
        case "anything" -> b.ulyssesAnything(flag(key, value));
        case "float8" -> b.ulyssesFloat8(flag(key, value));
        case "async" -> b.ulyssesAsync(flag(key, value));
        case "allgather" -> b.ringRotateMethod(flag(key, value) ? RingRotateMethod.ALLGATHER : RingRotateMethod.P2P);
        case "ring-bf16" -> b.ringConvertToFp32(!flag(key, value));
        default -> throw new ConfigException("--parallel", raw.trim(), "is not one of ulysses=N, ring=N, tp=N, cfg=N, "
            + "anything, float8, async, allgather, ring-bf16");
      }
    }
    return b.build();
  }

  private static int count(String key, String value) {
    if (value == null) {
      throw new ConfigException("--parallel", key, "needs a size, e.g. " + key + "=2");
    }
    try {
      return Integer.parseInt(value);
    } catch (NumberFormatException e) {
      throw new ConfigException("--parallel", key + "=" + value, "the size must be a whole number");
    }
  }

  private static boolean flag(String key, String value) {
    if (value == null || value.equals("true")) {
      return true;
    }
    if (value.equals("false")) {
      return false;
    }
    throw new ConfigException("--parallel", key + "=" + value, "a flag takes no value (or true/false)");
  }

  /**
   * The {@code parallelism_config} section of a config file, with the reference's keys (and aliases
   * {@code ulysses}, {@code ring}, {@code tp}). At most one size may be {@code auto}: the world size
   * divided by the product of the others.
   */
  public static ParallelismConfig fromMap(Map<String, Object> section, int world) {
    Map<String, Object> v = new LinkedHashMap<>();
    section.forEach((k, val) -> v.put(k.toLowerCase(Locale.ROOT), val));
    alias(v, "ulysses", "ulysses_size");
    alias(v, "ring", "ring_size");
    alias(v, "tp", "tp_size");
    alias(v, "cfg", "cfg_size");
    Builder b = builder();
    String auto = null;
    int product = 1;
    for (String key : List.of("ulysses_size", "ring_size", "tp_size", "cfg_size")) {
      Object val = v.remove(key);
      if (val == null) {
        continue;
      }
      if (val instanceof String s && s.trim().equalsIgnoreCase("auto")) {
        if (auto != null) {
          throw new ConfigException(key, "auto", "only one size may be auto (" + auto + " already is)");
        }
        auto = key;
        continue;
      }
      int n = integer(key, val);
      product *= n;
      set(b, key, n);
    }
    if (auto != null) {
      if (world < 1 || world % product != 0) {
        throw new ConfigException(auto, "auto", "the world size " + world + " is not a multiple of the other sizes' "
            + "product " + product);
      }
      set(b, auto, world / product);
    }
    Object backend = v.remove("backend");
    if (backend != null) {
      b.backend(ParallelismBackend.parse(String.valueOf(backend)));
    }
    b.ulyssesAnything(bool(v, "ulysses_anything"));
    b.ulyssesFloat8(bool(v, "ulysses_float8"));
    b.ulyssesAsync(bool(v, "ulysses_async"));
    Object rotate = v.remove("ring_rotate_method");
    if (rotate != null) {
      b.ringRotateMethod(switch (String.valueOf(rotate).trim().toLowerCase(Locale.ROOT)) {
        case "p2p" -> RingRotateMethod.P2P;
        case "allgather" -> RingRotateMethod.ALLGATHER;
        default -> throw new ConfigException("ring_rotate_method", rotate, "must be p2p or allgather");
      });
    }
    Object fp32 = v.remove("ring_convert_to_fp32");
    if (fp32 != null) {
      b.ringConvertToFp32(bool("ring_convert_to_fp32", fp32));
    }
    Object extra = v.remove("extra_parallel_modules");
    if (extra != null) {
      if (!(extra instanceof List<?> list)) {
        throw new ConfigException("extra_parallel_modules", extra, "must be a list of component names");
      }
      List<String> names = new ArrayList<>();
      list.forEach(o -> names.add(String.valueOf(o)));
      b.extraParallelModules(names);
    }
    // keys of the reference cachedit has no use for, accepted at their defaults
    Object attention = v.remove("attention_backend");
    if (attention != null && !String.valueOf(attention).equalsIgnoreCase("native")) {
      throw new ConfigException("attention_backend", attention, "only native (libtorch's SDPA) is supported");
    }
    Object ray = v.remove("use_ray");
    if (ray != null && bool("use_ray", ray)) {
      throw new ConfigException("use_ray", true, "is not supported: run the ranks with cachedit launch or torchrun's "
          + "environment");
    }
    if (!v.isEmpty()) {
      throw ConfigException.forField(v.keySet().iterator().next(), "unknown parallelism setting(s) " + v.keySet()
          + "; known: backend, ulysses_size, ring_size, tp_size, cfg_size, ulysses_anything, ulysses_float8, "
          + "ulysses_async, ring_rotate_method, ring_convert_to_fp32, extra_parallel_modules");
    }
    return b.build();
  }

  private static void alias(Map<String, Object> v, String alias, String key) {
    if (v.containsKey(alias)) {
      if (v.containsKey(key)) {
        throw new ConfigException(alias, v.get(alias), "given together with " + key + "; use one");
      }
      v.put(key, v.remove(alias));
    }
  }

  private static void set(Builder b, String key, int n) {
    switch (key) {
      case "ulysses_size" -> b.ulysses(n);
      case "ring_size" -> b.ring(n);
      case "tp_size" -> b.tp(n);
      default -> b.cfg(n);
    }
  }

  private static int integer(String key, Object v) {
    if (v instanceof Integer i) {
      return i;
    }
    if (v instanceof Number n && n.doubleValue() == Math.rint(n.doubleValue())) {
      return n.intValue();
    }
    throw new ConfigException(key, v, "must be a whole number or auto");
  }

  private static boolean bool(Map<String, Object> v, String key) {
    Object o = v.remove(key);
    return o != null && bool(key, o);
  }

  private static boolean bool(String key, Object o) {
    if (o instanceof Boolean b) {
      return b;
    }
    throw new ConfigException(key, o, "must be true or false");
  }

  /** Collects settings; {@link #build} checks them. */
  public static final class Builder {
    private ParallelismBackend backend = ParallelismBackend.AUTO;
    private Integer ulysses;
    private Integer ring;
    private Integer tp;
    private Integer cfg;
    private boolean anything;
    private boolean float8;
    private boolean async;
    private RingRotateMethod rotate = RingRotateMethod.P2P;
    private boolean fp32 = true;
    private List<String> extra = List.of();

    private Builder() {}

    public Builder backend(ParallelismBackend b) {
      backend = b;
      return this;
    }

    public Builder ulysses(int n) {
      ulysses = n;
      return this;
    }

    public Builder ring(int n) {
      ring = n;
      return this;
    }

    public Builder tp(int n) {
      tp = n;
      return this;
    }

    public Builder cfg(int n) {
      cfg = n;
      return this;
    }

    public Builder ulyssesAnything(boolean on) {
      anything = on;
      return this;
    }

    public Builder ulyssesFloat8(boolean on) {
      float8 = on;
      return this;
    }

    public Builder ulyssesAsync(boolean on) {
      async = on;
      return this;
    }

    public Builder ringRotateMethod(RingRotateMethod m) {
      rotate = m;
      return this;
    }

    public Builder ringConvertToFp32(boolean on) {
      fp32 = on;
      return this;
    }

    public Builder extraParallelModules(List<String> names) {
      extra = names;
      return this;
    }

    public ParallelismConfig build() {
      return new ParallelismConfig(backend, opt(ulysses), opt(ring), opt(tp), opt(cfg), anything, float8, async,
          rotate, fp32, extra);
    }

    private static OptionalInt opt(Integer v) {
      return v == null ? OptionalInt.empty() : OptionalInt.of(v);
    }
  }
}
