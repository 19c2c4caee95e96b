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
 * {@code cachedit.ompWaitPolicy=unchanged} is given). libgomp reads the variable once, when it loads:
 * call this (any cachedit entry point does) before the first use of libtorch.
 */
public final class NativeRuntime {
  private static final Logger LOG = LoggerFactory.getLogger(NativeRuntime.class);
  private static final Object LOCK = new Object();
  private static boolean initialized;  // process-wide by nature: native libraries load once per process

  private NativeRuntime() {}

  /** Applies the environment defaults (see the class comment) and loads libtorch. Idempotent. */
  public static void initialize() {
    synchronized (LOCK) {
      if (initialized) {
        return;
      }
      initialized = true;
      String property = System.getProperty("cachedit.ompWaitPolicy", "PASSIVE");
      if (!"unchanged".equalsIgnoreCase(property)) {
        boolean gompLoaded = libraryMapped("libgomp");
        String current = NativeEnvironment.getenv("OMP_WAIT_POLICY");
        if (current == null) {
          NativeEnvironment.setenv("OMP_WAIT_POLICY", property, 0);
          if (gompLoaded) {
            LOG.warn("libgomp was loaded before cachedit could set OMP_WAIT_POLICY={}; on machines with few cores "
                + "set it in the environment (or call NativeRuntime.initialize() before using libtorch)", property);
          }
        }
      }
      Loader.load(org.bytedeco.pytorch.global.torch.class);
    }
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
