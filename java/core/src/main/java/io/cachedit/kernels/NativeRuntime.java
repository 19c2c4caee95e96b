package io.cachedit.kernels;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.bytedeco.javacpp.Loader;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One-time native set-up of the process, done before libtorch loads.
 *
 * <p>libtorch's CPU build runs its element-wise ops on an OpenMP (libgomp) pool and its matrix
 * products on OpenBLAS's own threads. With libgomp's default "active" wait policy both pools spin
 * when idle, and on a machine with few cores every OpenMP region that follows a matrix product waits
 * for a spinning thread to be descheduled: on the 2-core machine we test on, about 8 ms per op and
 * half the throughput of a transformer block. {@link #initialize()} therefore sets
 * {@code OMP_WAIT_POLICY=PASSIVE} unless the environment already sets it (or the system property
 * {@code cachedit.ompWaitPolicy=unchanged} is given). {@code CACHEDIT_OMP_SPINCOUNT=N} /
 * {@code cachedit.ompSpinCount} makes idle threads spin N times (about 100,000 per millisecond) before
 * they sleep ({@code GOMP_SPINCOUNT}): faster on a machine with nothing else to do, two to three times
 * slower next to other work (docs/runtime.md, "Why these defaults"). libgomp reads these once, when it
 * loads: call this (any cachedit entry point does) before the first use of libtorch.
 *
 * <p>One compute pool: OpenBLAS's own pthreads spin beside libtorch's OpenMP threads, and next to
 * any other busy process the two pools fight for the cores (a second cachedit process made a forward
 * 20-40x slower). So OpenBLAS runs single-threaded inside libtorch's OpenMP pool
 * ({@code OPENBLAS_NUM_THREADS=1} before it loads) unless the environment sets
 * {@code OPENBLAS_NUM_THREADS} or {@code CACHEDIT_BLAS_THREADS=native} (system property
 * {@code cachedit.blasThreads=native}) asks for OpenBLAS's own threads. The pool's size is libtorch's
 * ({@code OMP_NUM_THREADS}, else the cores), or {@code CACHEDIT_THREADS} / {@code cachedit.threads}.
 * {@link #describe()} says what applied, including when a library was loaded too early for a setting
 * to take effect.
 */
public final class NativeRuntime {
  private static final Logger LOG = LoggerFactory.getLogger(NativeRuntime.class);
  private static final Object LOCK = new Object();
  private static boolean initialized;  // process-wide by nature: native libraries load once per process
  private static boolean waitPolicyApplied;
  private static String blasThreads;  // what OpenBLAS was told before it loaded, or why nothing was

  private NativeRuntime() {}

  /** Applies the environment defaults (see the class comment) and loads libtorch. Idempotent. */
  public static void initialize() {
    synchronized (LOCK) {
      if (initialized) {
        return;
      }
      initialized = true;
      String property = System.getProperty("cachedit.ompWaitPolicy", "PASSIVE");
      boolean gompLoaded = libraryMapped("libgomp");
      // set before the process started, libgomp read it whenever it loaded; set by us, only if it loads after
      waitPolicyApplied = NativeEnvironment.getenv("OMP_WAIT_POLICY") != null || !gompLoaded;
      if (!"unchanged".equalsIgnoreCase(property)) {
        String current = NativeEnvironment.getenv("OMP_WAIT_POLICY");
        if (current == null) {
          NativeEnvironment.setenv("OMP_WAIT_POLICY", property, 0);
          // opt-in spin before sleeping: faster on an idle machine, much slower next to other work
          String spin = setting("cachedit.ompSpinCount", "CACHEDIT_OMP_SPINCOUNT", null);
          if (spin != null && property.equalsIgnoreCase("PASSIVE") && NativeEnvironment.getenv("GOMP_SPINCOUNT") == null) {
            NativeEnvironment.setenv("GOMP_SPINCOUNT", Long.toString(parseSpinCount(spin)), 0);
          }
          if (gompLoaded) {
            LOG.warn("libgomp was loaded before cachedit could set OMP_WAIT_POLICY={}; on machines with few cores "
                + "set it in the environment (or call NativeRuntime.initialize() before using libtorch)", property);
          }
        }
      }
      String mode = setting("cachedit.blasThreads", "CACHEDIT_BLAS_THREADS", "1");
      String given = NativeEnvironment.getenv("OPENBLAS_NUM_THREADS");
      if (given != null) {
        blasThreads = given + " (OPENBLAS_NUM_THREADS from the environment)";
      } else if (mode.equalsIgnoreCase("native")) {
        blasThreads = "OpenBLAS's own pool (CACHEDIT_BLAS_THREADS=native)";
      } else if (libraryMapped("libopenblas")) {
        blasThreads = "unknown: OpenBLAS was loaded before cachedit could set OPENBLAS_NUM_THREADS";
        LOG.warn("OpenBLAS was loaded before cachedit could make it single-threaded; set OPENBLAS_NUM_THREADS=1 in "
            + "the environment so that its threads do not compete with libtorch's pool");
      } else {
        int n;
        try {
          n = Integer.parseInt(mode);
        } catch (NumberFormatException e) {
          throw io.cachedit.error.ConfigException.forField("CACHEDIT_BLAS_THREADS", "CACHEDIT_BLAS_THREADS / "
              + "cachedit.blasThreads must be a thread count or native, got " + mode);
        }
        NativeEnvironment.setenv("OPENBLAS_NUM_THREADS", Integer.toString(Math.max(1, n)), 0);
        blasThreads = Math.max(1, n) + (n == 1 ? " (inside libtorch's pool: one compute pool)" : "");
      }
      Loader.load(org.bytedeco.pytorch.global.torch.class);
      String threads = setting("cachedit.threads", "CACHEDIT_THREADS", null);
      if (threads != null) {
        setThreads(parseThreads(threads, "CACHEDIT_THREADS"));
      }
    }
  }

  static long parseSpinCount(String value) {
    try {
      long n = Long.parseLong(value.trim());
      if (n >= 0) {
        return n;
      }
    } catch (NumberFormatException e) {
      // reported below
    }
    throw io.cachedit.error.ConfigException.forField("CACHEDIT_OMP_SPINCOUNT", "CACHEDIT_OMP_SPINCOUNT / "
        + "cachedit.ompSpinCount must be a spin count >= 0 (0: sleep at once), got " + value);
  }

  private static String setting(String property, String env, String fallback) {
    String v = System.getProperty(property);
    if (v == null || v.isBlank()) {
      v = NativeEnvironment.getenv(env);
    }
    return v == null || v.isBlank() ? fallback : v.trim();
  }

  static int parseThreads(String value, String field) {
    try {
      int n = Integer.parseInt(value.trim());
      if (n >= 1 && n <= 4096) {
        return n;
      }
    } catch (NumberFormatException e) {
      // reported below
    }
    throw io.cachedit.error.ConfigException.forField(field, field + " must be a thread count 1..4096, got " + value);
  }

  /**
   * Sizes the process's compute pool: libtorch's intra-op (OpenMP) threads, which OpenBLAS runs inside
   * and cachedit's kernels take their count from.
   */
  public static void setThreads(int threads) {
    if (threads < 1 || threads > 4096) {
      throw io.cachedit.error.ConfigException.forField("threads", "threads must be 1..4096, got " + threads);
    }
    initialize();
    org.bytedeco.pytorch.global.torch.set_num_threads(threads);
  }

  /** The compute pool's size (libtorch's intra-op threads). */
  public static int threads() {
    initialize();
    return org.bytedeco.pytorch.global.torch.get_num_threads();
  }

  /**
   * Whether generation commands run fp32 CPU linear layers on cachedit's own kernel (parallel in the
   * one compute pool, batch-invariant) instead of libtorch's single-threaded-BLAS call:
   * {@code CACHEDIT_LINEAR=cachedit} (default with the one pool) or {@code libtorch}; system property
   * {@code cachedit.linear}. Libraries apply it with {@code BatchInvariance.apply(model)}.
   */
  public static boolean cachedItLinear() {
    String v = setting("cachedit.linear", "CACHEDIT_LINEAR", null);
    if (v == null) {
      return !setting("cachedit.blasThreads", "CACHEDIT_BLAS_THREADS", "1").equalsIgnoreCase("native")
          && NativeEnvironment.getenv("OPENBLAS_NUM_THREADS") != null
          && NativeEnvironment.getenv("OPENBLAS_NUM_THREADS").equals("1");
    }
    if (!v.equals("cachedit") && !v.equals("libtorch")) {
      throw io.cachedit.error.ConfigException.forField("CACHEDIT_LINEAR", "CACHEDIT_LINEAR / cachedit.linear must "
          + "be cachedit or libtorch, got " + v);
    }
    return v.equals("cachedit");
  }

  /** Whether libgomp loaded after cachedit set OMP_WAIT_POLICY (so the policy it reports is the one in force). */
  public static boolean waitPolicyApplied() {
    initialize();
    return waitPolicyApplied;
  }

  /** One line on the compute pool: threads, OpenBLAS's threading and the OpenMP wait policy, as they apply. */
  public static String describe() {
    initialize();
    String policy = ompWaitPolicy();
    return "compute pool: " + threads() + " threads (libtorch OpenMP); OpenBLAS threads: " + blasThreads
        + "; OMP_WAIT_POLICY " + (policy == null ? "unset (libgomp default: active)" : policy)
        + (NativeEnvironment.getenv("GOMP_SPINCOUNT") == null ? "" : ", GOMP_SPINCOUNT "
            + NativeEnvironment.getenv("GOMP_SPINCOUNT"))
        + (waitPolicyApplied ? "" : " (not applied: libgomp was loaded before cachedit)");
  }

  /** The OpenMP wait policy libgomp saw (or will see), or null if unset. */
  public static String ompWaitPolicy() {
    return NativeEnvironment.getenv("OMP_WAIT_POLICY");
  }

  private static boolean libraryMapped(String name) {
    try {
      return Files.readString(Path.of("/proc/self/maps")).contains(name);
    } catch (IOException | RuntimeException e) {
      return false;
    }
  }
}
