package io.cachedit.cache.engine;

import io.cachedit.cache.BasicCacheConfig;
import io.cachedit.cache.CacheDecision;
import io.cachedit.cache.CacheStats;
import io.cachedit.cache.CalibratorConfig;
import io.cachedit.cache.DecisionReason;
import io.cachedit.cache.EngineSettings;
import io.cachedit.cache.RefreshPolicy;
import io.cachedit.error.ConfigException;
import io.cachedit.kernels.Kernels;
import io.cachedit.models.common.BlockIO;
import io.cachedit.models.common.BlockList;
import io.cachedit.models.common.BlockRunner;
import io.cachedit.models.common.StepContext;

/**
 * The cache engine of one block list: installed as the list's {@link BlockRunner}, it owns the list's
 * {@link CacheContext} (when contexts start and refresh, docs/algorithms.md section 8.2) and hands each
 * call to the {@link CachePolicy} of its config's type, which decides which blocks run. Calls on one
 * runner are serialised. Built by {@code CacheDit.enableCache}; use the facade rather than this class.
 */
public final class CachedBlockRunner implements BlockRunner, AutoCloseable {
  private final String listName;
  private final int blockCount;
  private final CachePolicy.Engine engine;
  private final boolean defaultSeparateCfg;
  private CachePolicy policy;
  private CacheContext ctx;
  private boolean closed;
  private volatile Object owner;

  /**
   * @param separateCfg the adapter's separate-CFG flag, used when the config leaves it unset
   * @param settings how the engine runs (kernel threads, diff reducer, default buffer precision, listener)
   */
  public CachedBlockRunner(BlockList<?> list, BasicCacheConfig config, CalibratorConfig calibratorConfig,
      boolean separateCfg, EngineSettings settings) {
    this.listName = list.name();
    this.blockCount = list.size();
    this.defaultSeparateCfg = separateCfg;
    Kernels kernels = settings.kernelThreads() == EngineSettings.COMPUTE_POOL
        ? Kernels.forComputePool() : Kernels.withThreads(settings.kernelThreads());
    this.engine = new CachePolicy.Engine(listName, list.pattern(), kernels, settings.reducer(), settings.listener(),
        settings.bufferPrecision());
    this.policy = policy(config, calibratorConfig);
  }

  private CachePolicy policy(BasicCacheConfig config, CalibratorConfig calibrator) {
    config.validateFor(listName, blockCount);
    boolean separate = config.enableSeparateCfg().orElse(defaultSeparateCfg);
    if (separate && config.cfgDiffComputeSeparate() && config.cfgComputeFirst()) {
      throw new ConfigException("cfg_compute_first = true requires cfg_diff_compute_separate = false for " + listName
          + " (separate CFG is on through its adapter)");
    }
    return CachePolicy.of(config, calibrator, engine);
  }

  public String listName() {
    return listName;
  }

  /** The object that installed this runner (the facade's handle), for disabling by target. */
  public Object owner() {
    return owner;
  }

  public void setOwner(Object owner) {
    this.owner = owner;
  }

  public synchronized BasicCacheConfig config() {
    return policy.config;
  }

  public synchronized CalibratorConfig calibratorConfig() {
    return policy.calibrator;
  }

  private boolean separateCfg() {
    return policy.config.enableSeparateCfg().orElse(defaultSeparateCfg);
  }

  private CacheContext newContext(long generation, int totalSteps) {
    return new CacheContext(policy.config, policy.calibrator, separateCfg(), generation, totalSteps,
        policy.slots(blockCount), listName);
  }

  private void replaceContext(CacheContext next) {
    if (ctx != null) {
      ctx.close();
    }
    ctx = next;
  }

  /** Pipelines start fresh per generation; transformer-only calls refresh without drift (section 8.2). */
  private CacheContext enter(StepContext step) {
    BasicCacheConfig config = policy.config;
    if (step != null) {
      if (ctx == null || ctx.generation != step.generation()) {
        replaceContext(newContext(step.generation(), step.totalSteps()));
      }
      return ctx;
    }
    int steps = config.numInferenceSteps().orElse(0);
    if (ctx == null) {
      replaceContext(newContext(-1, steps));
      return ctx;
    }
    if (steps > 0 && ctx.executedSteps >= steps && ctx.nextCallAdvancesStep()) {
      replaceContext(newContext(-1, steps));
    } else if (config.forceRefreshStepHint().isPresent()
        && ctx.transformerExecutedSteps == config.forceRefreshStepHint().getAsInt()) {
      if (config.forceRefreshStepPolicy() == RefreshPolicy.ONCE) {
        policy = CachePolicy.of(config.withoutForceRefreshStepHint(), policy.calibrator, engine);
      }
      CacheContext next = newContext(-1, steps);
      next.carryAccumulated(ctx);
      replaceContext(next);
    }
    return ctx;
  }

  @Override
  public synchronized <A> BlockIO run(BlockList<A> list, BlockIO input, A args, StepContext step) {
    if (closed) {
      return list.runRange(0, list.size(), input, args);
    }
    if (list.size() != blockCount || !list.name().equals(listName)) {
      throw new IllegalStateException("runner of " + listName + " called for " + list);
    }
    if (step != null && step.branch() == StepContext.Branch.BYPASS) {
      CacheDecision d = new CacheDecision(listName, -1, step.step(), StepContext.Branch.BYPASS, -1, false,
          DecisionReason.BYPASS, Double.NaN, Double.NaN);
      if (ctx != null && ctx.generation == step.generation()) {
        ctx.trace(d);
      }
      engine.listener().onDecision(d);
      return list.runRange(0, list.size(), input, args);
    }
    CacheContext c = enter(step);
    return policy.run(c, list, input, args, step);
  }

  // ---------------------------------------------------------------------------------------------
  // refresh, stats, lifecycle
  // ---------------------------------------------------------------------------------------------

  /** Recreates the context with another step count (cache-dit's {@code refresh_context}). */
  public synchronized void refresh(int numInferenceSteps) {
    policy = CachePolicy.of(policy.config.withNumInferenceSteps(numInferenceSteps), policy.calibrator, engine);
    replaceContext(null);
  }

  /** Recreates the context with a new config (and calibrator config, which may be null). */
  public synchronized void refresh(BasicCacheConfig newConfig, CalibratorConfig newCalibrator) {
    policy = policy(newConfig, newCalibrator);
    replaceContext(null);
  }

  /** The statistics of the current context (empty before the first call). */
  public synchronized CacheStats stats() {
    return CacheContext.stats(listName, policy.config, policy.calibrator, ctx);
  }

  @Override
  public synchronized void close() {
    closed = true;
    replaceContext(null);
  }

  @Override
  public String toString() {
    return "CachedBlockRunner[" + listName + ", " + policy.config.strify() + "]";
  }
}
