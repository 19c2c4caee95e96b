package io.cachedit.io;

import io.cachedit.error.WeightLoadException;
import io.cachedit.kernels.NativeScope;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * Hands a model its parameters by checkpoint key, one path segment at a time (candle's VarBuilder):
 * {@code w.pp("transformer_blocks").pp(0).pp("attn").get("to_q.weight", inner, dim)}. Keys equal the
 * diffusers checkpoint's.
 *
 * <p>Loading collects problems instead of stopping at the first: {@link #finish()} throws one
 * {@link WeightLoadException} listing every missing, wrong-shaped and unexpected tensor with its
 * file. Without a source, weights are generated (seeded, per key) for tests and training.
 * Parameters are converted to the requested floating dtype on load; they belong to the
 * {@link Parameters} object, which the model releases on close.
 */
public final class WeightScope {
  /** The parameters a model was built with, by checkpoint key, in creation order. Owns the tensors. */
  public static final class Parameters implements AutoCloseable {
    private final Map<String, Tensor> tensors = new LinkedHashMap<>();
    private final Map<String, Object> modules = new LinkedHashMap<>();
    private final List<AutoCloseable> adopted = new ArrayList<>();
    private final NativeScope owner = NativeScope.owner("model parameters");
    /** Memory-mapped files the parameters are views of, with their size and modification time at load. */
    private final Map<java.nio.file.Path, long[]> mapped = new LinkedHashMap<>();

    /**
     * Fails if a file the parameters are memory-mapped from changed size or modification time since
     * the model was loaded: its pages are the weights, so a rewritten file would silently change the
     * outputs and a truncated one would crash the process on the next read. Call before a generation.
     */
    public synchronized void checkUnchanged() {
      for (Map.Entry<java.nio.file.Path, long[]> e : mapped.entrySet()) {
        long[] now = stat(e.getKey());
        if (now == null || now[0] != e.getValue()[0] || now[1] != e.getValue()[1]) {
          throw new WeightLoadException(e.getKey() + " changed on disk after the model was loaded ("
              + (now == null ? "it is gone" : "size " + e.getValue()[0] + " -> " + now[0] + " bytes, modified "
                  + java.time.Instant.ofEpochMilli(e.getValue()[1]) + " -> " + java.time.Instant.ofEpochMilli(now[1]))
              + "); its weights are memory-mapped, so reload the model (or load with -Dcachedit.weights=memory "
              + "to keep a private copy in memory)");
        }
      }
    }

    synchronized void recordMapped(java.nio.file.Path file) {
      long[] s = stat(file);
      if (s != null) {
        mapped.putIfAbsent(file, s);
      }
    }

    private static long[] stat(java.nio.file.Path file) {
      try {
        return new long[] {java.nio.file.Files.size(file),
            java.nio.file.Files.getLastModifiedTime(file).toMillis()};
      } catch (java.io.IOException e) {
        return null;
      }
    }

    /** Modules that registered themselves while the model was built, by their key prefix, in build order. */
    public synchronized Map<String, Object> modules() {
      return java.util.Collections.unmodifiableMap(new LinkedHashMap<>(modules));
    }

    /**
     * Frees parameter {@code key} and forgets it: a policy that replaced it (quantisation) calls
     * this. Unknown keys are ignored.
     */
    public synchronized void release(String key) {
      owner.ensureOpen();
      Tensor t = tensors.remove(key);
      if (t != null) {
        owner.release(t);
      }
    }

    /** Takes ownership of native memory that replaced parameters: closed with the parameters. */
    public synchronized void adopt(AutoCloseable resource) {
      owner.ensureOpen();
      adopted.add(resource);
    }

    /** The parameters; {@link IllegalStateException} once closed. */
    public Map<String, Tensor> asMap() {
      owner.ensureOpen();
      return java.util.Collections.unmodifiableMap(tensors);
    }

    /** Whether {@link #close()} was called. */
    public boolean isClosed() {
      return owner.isClosed();
    }

    Tensor keep(Tensor t) {
      return owner.keep(t);
    }

    public long count() {
      long n = 0;
      for (Tensor t : tensors.values()) {
        n += t.numel();
      }
      return n;
    }

    @Override
    public synchronized void close() {
      for (AutoCloseable r : adopted) {
        try {
          r.close();
        } catch (Exception e) {
          throw new IllegalStateException("closing " + r + ": " + e.getMessage(), e);
        }
      }
      adopted.clear();
      owner.close();
      tensors.clear();
    }
  }

  /**
   * Whether loaded weights are checked for NaN and infinities (one pass over each tensor as it loads):
   * on unless {@code -Dcachedit.checkFinite=false} or {@code CACHEDIT_CHECK_FINITE=0}, for very large
   * checkpoints whose load time matters more.
   */
  static boolean checkFiniteEnabled() {
    String p = System.getProperty("cachedit.checkFinite");
    if (p != null) {
      return !p.equalsIgnoreCase("false") && !p.equals("0");
    }
    String e = System.getenv("CACHEDIT_CHECK_FINITE");
    return e == null || !(e.equals("0") || e.equalsIgnoreCase("false"));
  }

  /**
   * Whether parameters are copied into memory instead of staying views of the memory-mapped files:
   * {@code -Dcachedit.weights=memory} or {@code CACHEDIT_WEIGHTS=memory} (then the files may change or
   * go after loading; the default mapping shares pages with the page cache and loads lazily).
   */
  static boolean copyWeightsEnabled() {
    String p = System.getProperty("cachedit.weights");
    String v = p != null ? p : System.getenv("CACHEDIT_WEIGHTS");
    return v != null && v.equalsIgnoreCase("memory");
  }

  private static final class Root {
    final WeightSource source;  // null = generate
    final ScalarType dtype;
    final long seed;
    final Parameters parameters = new Parameters();
    final List<String> missing = new ArrayList<>();
    final List<String> wrongShape = new ArrayList<>();
    final List<String> wrongType = new ArrayList<>();
    final List<String> nonFinite = new ArrayList<>();
    final boolean checkFinite = checkFiniteEnabled();
    final boolean copyWeights = copyWeightsEnabled();
    final Set<String> allowedUnused = new TreeSet<>();
    final WeightSharding sharding;
    Set<String> placeholders = Set.of();

    Root(WeightSource source, ScalarType dtype, long seed, WeightSharding sharding) {
      this.source = source;
      this.dtype = dtype;
      this.seed = seed;
      this.sharding = sharding == null ? WeightSharding.NONE : sharding;
    }
  }

  private final Root root;
  private final String prefix;

  private WeightScope(Root root, String prefix) {
    this.root = root;
    this.prefix = prefix;
  }

  /** Parameters from a source, converted to {@code dtype} (Float, BFloat16 or Half). */
  public static WeightScope load(WeightSource source, ScalarType dtype) {
    return load(source, dtype, WeightSharding.NONE);
  }

  /**
   * Parameters from a source, each cut to this process's part as {@code sharding} says: only that
   * part is copied out of the (memory-mapped) source, so a shard costs its own bytes only.
   */
  public static WeightScope load(WeightSource source, ScalarType dtype, WeightSharding sharding) {
    requireFloat(dtype);
    return new WeightScope(new Root(source, dtype, 0, sharding), "");
  }

  /**
   * Generated parameters: norm weights 1, biases 0, matrices normal with std {@code 1/sqrt(fan_in)},
   * each seeded from {@code seed} and its key, so a model is reproducible whatever its build order.
   */
  public static WeightScope random(long seed, ScalarType dtype) {
    return random(seed, dtype, WeightSharding.NONE);
  }

  /**
   * Generated parameters cut as {@code sharding} says: each tensor is generated whole (so every shard
   * is part of the same model as {@link #random(long, ScalarType)} builds) and only the part is kept.
   */
  public static WeightScope random(long seed, ScalarType dtype, WeightSharding sharding) {
    requireFloat(dtype);
    return new WeightScope(new Root(null, dtype, seed, sharding), "");
  }

  /**
   * Declares parameters that the source stores in another form (a quantised checkpoint): {@link #get}
   * returns a zero-stride stand-in of the requested shape for them, which whoever declared them
   * replaces after the model is built. Call before building the model.
   */
  public WeightScope withPlaceholders(Set<String> keys) {
    root.placeholders = Set.copyOf(keys);
    return this;
  }

  /**
   * Records {@code module} under this scope's prefix, so that policies applied after loading
   * (quantisation) can find it: {@link Parameters#modules()}.
   */
  public void register(Object module) {
    root.parameters.modules.put(prefix, module);
  }

  /** The parameters this scope hands out (owned by the model once loading ends). */
  public Parameters parameters() {
    return root.parameters;
  }

  /** How this scope's parameters are cut across processes ({@link WeightSharding#NONE}: whole). */
  public WeightSharding sharding() {
    return root.sharding;
  }

  private static void requireFloat(ScalarType dtype) {
    ScalarType t = dtype.intern();
    if (t != ScalarType.Float && t != ScalarType.BFloat16 && t != ScalarType.Half) {
      throw new IllegalArgumentException("unsupported model dtype " + dtype + "; use fp32, bf16 or fp16");
    }
  }

  /** A child scope: {@code prefix.segment}. */
  public WeightScope pp(String segment) {
    WeightScope s = new WeightScope(root, prefix.isEmpty() ? segment : prefix + "." + segment);
    s.keepFp32 = keepFp32;
    return s;
  }

  public WeightScope pp(int index) {
    return pp(Integer.toString(index));
  }

  public String prefix() {
    return prefix;
  }

  public ScalarType dtype() {
    return root.dtype;
  }

  /** Whether a key below this scope exists in the source (always true for generated weights). */
  public boolean contains(String name) {
    return root.source == null || root.source.keys().contains(key(name));
  }

  /** Whether any key below {@code prefix.name} exists in the source. */
  public boolean containsPrefix(String name) {
    if (root.source == null) {
      return true;
    }
    String p = key(name) + ".";
    for (String k : root.source.keys()) {
      if (k.startsWith(p)) {
        return true;
      }
    }
    return false;
  }

  private String key(String name) {
    return prefix.isEmpty() ? name : prefix + "." + name;
  }

  /**
   * A child scope whose parameters stay in fp32 whatever the model dtype (diffusers'
   * {@code _keep_in_fp32_modules}).
   */
  public WeightScope fp32() {
    WeightScope s = new WeightScope(root, prefix);
    s.keepFp32 = true;
    return s;
  }

  private boolean keepFp32;

  /**
   * The parameter {@code prefix.name} of the given (checkpoint) shape, in the model dtype (or fp32,
   * see {@link #fp32()}); under a {@link #sharding()} that cuts it, only this process's part.
   */
  public Tensor get(String name, long... shape) {
    String key = key(name);
    Tensor existing = root.parameters.tensors.get(key);
    if (existing != null) {
      return existing;
    }
    WeightSharding.Slice slice = root.sharding.slice(key, shape);
    long[] local = slice == null ? shape : slice.apply(shape);
    Tensor value;
    ScalarType target = keepFp32 ? ScalarType.Float : root.dtype;
    try (PointerScope scope = new PointerScope()) {
      if (root.placeholders.contains(key)) {
        // stored quantised: a zero-stride stand-in of the dense shape until the loader installs the layer
        value = root.parameters.keep(torch.zeros(new long[] {1}).to(target).expand(local));
      } else if (root.source == null) {
        value = root.parameters.keep(cut(generate(key, shape), slice).to(target));
      } else {
        long[] actual = root.source.shape(key);
        if (actual == null) {
          root.missing.add(key + " " + Arrays.toString(shape));
          value = root.parameters.keep(standIn(local));
        } else if (!Arrays.equals(actual, shape)) {
          root.wrongShape.add(key + " in " + root.source.origin(key) + ": expected " + Arrays.toString(shape)
              + ", found " + Arrays.toString(actual));
          value = root.parameters.keep(standIn(local));
        } else {
          Tensor t = cut(root.source.load(key), slice);
          ScalarType stored = t.scalar_type().intern();
          boolean floating = stored == ScalarType.Float || stored == ScalarType.BFloat16 || stored == ScalarType.Half
              || stored == ScalarType.Double;
          if (!floating) {  // an integer or fp8 tensor where the model needs floats: never reinterpret it
            root.wrongType.add(key + " in " + root.source.origin(key) + ": stored as " + stored
                + ", a floating-point parameter needs F32, BF16, F16 or F64");
            value = root.parameters.keep(standIn(local));
          } else {
            if (root.checkFinite && !torch.isfinite(t).all().item_bool()) {
              root.nonFinite.add(key + " in " + root.source.origin(key));
            }
            boolean view = stored == target && !root.copyWeights && slice == null;
            // a view of the mapping, a converted copy, a cut copy, or (weights=memory) a plain copy
            value = root.parameters.keep(view || (slice != null && stored == target) ? t
                : stored != target ? t.to(target) : t.clone());
            if (view) {
              String origin = root.source.origin(key);
              for (java.nio.file.Path f : root.source.files()) {
                if (f.toString().equals(origin) || f.getFileName().toString().equals(origin)) {
                  root.parameters.recordMapped(f);
                }
              }
            }
          }
        }
      }
    }
    root.parameters.tensors.put(key, value);
    return value;
  }

  /**
   * A zero-stride stand-in of {@code shape} for a tensor that is missing or unusable: the model can be
   * built to the end, so {@link #finish} lists every problem, without allocating what config.json
   * claims (a bogus config must not exhaust memory before the error).
   */
  private Tensor standIn(long[] shape) {
    return torch.zeros(new long[] {1}).to(root.dtype).expand(shape);
  }

  /** Whether loading has met a missing, wrong-shaped or wrong-dtype tensor so far. */
  public boolean hasProblems() {
    return !root.missing.isEmpty() || !root.wrongShape.isEmpty() || !root.wrongType.isEmpty()
        || !root.nonFinite.isEmpty();
  }

  /** The slice's pieces of {@code t} as one new contiguous tensor (only those bytes are read). */
  private static Tensor cut(Tensor t, WeightSharding.Slice slice) {
    if (slice == null) {
      return t;
    }
    if (slice.starts().length == 1) {
      Tensor part = t.narrow(slice.dim(), slice.starts()[0], slice.lengths()[0]);
      return part.is_contiguous() ? part.clone() : part.contiguous();  // a copy: the mapping's other pages stay untouched
    }
    org.bytedeco.pytorch.TensorVector parts = new org.bytedeco.pytorch.TensorVector();
    for (int i = 0; i < slice.starts().length; i++) {
      parts.push_back(t.narrow(slice.dim(), slice.starts()[i], slice.lengths()[i]));
    }
    return torch.cat(parts, slice.dim());
  }

  /** The parameter if the source has it, else null (optional biases, optional branches). */
  public Tensor getOptional(String name, long... shape) {
    return contains(name) ? get(name, shape) : null;
  }

  /** Declares keys below this scope that may stay unused (e.g. buffers the model recomputes). */
  public void allowUnused(String name) {
    root.allowedUnused.add(key(name));
  }

  /** Declares every key below {@code prefix.*} unused on purpose (a vision tower a text encoder ignores). */
  public void allowUnusedBelow(String name) {
    root.allowedUnused.add(key(name) + ".*");
  }

  private Tensor generate(String key, long[] shape) {
    torch.manual_seed(root.seed * 1_000_003L + key.hashCode());
    boolean norm = key.contains("norm") && !key.contains("linear");
    if (key.endsWith("bias")) {
      return torch.zeros(shape).to(root.dtype);
    }
    if (shape.length == 1) {
      return (norm ? torch.ones(shape) : torch.randn(shape).mul(new Scalar(0.02))).to(root.dtype);
    }
    long fanIn = 1;
    for (int i = 1; i < shape.length; i++) {
      fanIn *= shape[i];
    }
    return torch.randn(shape).mul(new Scalar(1.0 / Math.sqrt(Math.max(1, fanIn)))).to(root.dtype);
  }

  /**
   * Ends loading: throws one exception listing every missing, wrong-shaped and unexpected tensor.
   *
   * @return the parameters (owned; the model closes them)
   */
  public Parameters finish() {
    List<String> problems = new ArrayList<>();
    if (!root.missing.isEmpty()) {
      problems.add(root.missing.size() + " missing: " + String.join(", ", limit(root.missing)));
    }
    if (!root.wrongShape.isEmpty()) {
      problems.add(root.wrongShape.size() + " with the wrong shape: " + String.join("; ", limit(root.wrongShape)));
    }
    if (!root.wrongType.isEmpty()) {
      problems.add(root.wrongType.size() + " with a non-float dtype: " + String.join("; ", limit(root.wrongType)));
    }
    if (!root.nonFinite.isEmpty()) {
      problems.add(root.nonFinite.size() + " holding NaN or infinite values (first: " + root.nonFinite.get(0) + "): "
          + String.join(", ", limit(root.nonFinite)) + " (the check can be skipped with -Dcachedit.checkFinite=false"
          + " or CACHEDIT_CHECK_FINITE=0)");
    }
    if (root.source != null) {
      List<String> unexpected = new ArrayList<>();
      for (String k : root.source.keys()) {
        if (!root.parameters.tensors.containsKey(k) && !root.allowedUnused.contains(k) && !allowedBelow(k)) {
          unexpected.add(k + " (" + root.source.origin(k) + ")");
        }
      }
      if (!unexpected.isEmpty()) {
        problems.add(unexpected.size() + " unexpected: " + String.join(", ", limit(unexpected)));
      }
    }
    if (!problems.isEmpty()) {
      root.parameters.close();
      throw new WeightLoadException("the checkpoint does not match the model config: " + String.join("; ",
          problems) + ". Check that config.json belongs to these weights.");
    }
    return root.parameters;
  }

  private boolean allowedBelow(String key) {
    for (String a : root.allowedUnused) {
      if (a.endsWith(".*") && key.startsWith(a.substring(0, a.length() - 1))) {
        return true;
      }
    }
    return false;
  }

  private static List<String> limit(List<String> items) {
    if (items.size() <= 30) {
      return items;
    }
    List<String> l = new ArrayList<>(items.subList(0, 30));
    l.add("... " + (items.size() - 30) + " more");
    return l;
  }
}
