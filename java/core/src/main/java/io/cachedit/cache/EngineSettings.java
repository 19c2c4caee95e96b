package io.cachedit.cache;

import io.cachedit.error.ConfigException;

/**
 * How the cache engine runs, as opposed to what it decides (that is {@link CacheOptions}): the CPU
 * threads of its kernels, the {@link DiffReducer} that makes a parallel group decide as one, the
 * precision residuals are held in when a config does not say, and a {@link DecisionListener} that
 * sees every decision as it is made. Pass it to {@code CacheDit.enableCache(target, options, settings)}.
 *
 * @param kernelThreads CPU threads of the diff, Taylor and packing kernels (>= 1), or
 *     {@link #COMPUTE_POOL}: as many as the process's compute pool (libtorch's intra-op threads, set by
 *     {@code --threads} / {@code NativeRuntime.setThreads}) when the cache is enabled
 * @param reducer combines the diff sums of a parallel group ({@link DiffReducer#LOCAL}: none)
 * @param bufferPrecision precision of held residuals for configs that leave
 *     {@code cache_buffer_precision} unset
 * @param listener called with every decision, on the thread that made it ({@link DecisionListener#NONE})
 */
public record EngineSettings(int kernelThreads, DiffReducer reducer, BufferPrecision bufferPrecision,
    DecisionListener listener) {
  /** {@code kernelThreads} value for "the compute pool's size" (the default). */
  public static final int COMPUTE_POOL = 0;

  public EngineSettings {
    if (kernelThreads < 0) {
      throw new ConfigException("kernel_threads", kernelThreads, "must be >= 1, or 0 (COMPUTE_POOL) for the compute pool's size");
    }
    reducer = reducer == null ? DiffReducer.LOCAL : reducer;
    bufferPrecision = bufferPrecision == null ? BufferPrecision.FULL : bufferPrecision;
    listener = listener == null ? DecisionListener.NONE : listener;
  }

  /** The compute pool's threads, no group, full-precision residuals, no listener. */
  public static EngineSettings defaults() {
    return new EngineSettings(COMPUTE_POOL, DiffReducer.LOCAL, BufferPrecision.FULL, DecisionListener.NONE);
  }

  public EngineSettings withKernelThreads(int threads) {
    return new EngineSettings(threads, reducer, bufferPrecision, listener);
  }

  public EngineSettings withReducer(DiffReducer diffReducer) {
    return new EngineSettings(kernelThreads, diffReducer, bufferPrecision, listener);
  }

  public EngineSettings withBufferPrecision(BufferPrecision precision) {
    return new EngineSettings(kernelThreads, reducer, precision, listener);
  }

  public EngineSettings withListener(DecisionListener decisionListener) {
    return new EngineSettings(kernelThreads, reducer, bufferPrecision, decisionListener);
  }
}
