package io.cachedit.cache;

import io.cachedit.kernels.Kernels;
import io.cachedit.kernels.RelL1Sums;
import io.cachedit.kernels.Tensors;
import io.cachedit.models.common.BlockIO;
import io.cachedit.models.common.BlockList;
import io.cachedit.models.common.BlockRunner;
import io.cachedit.models.common.ForwardPattern;
import io.cachedit.models.common.StepContext;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import org.bytedeco.pytorch.Tensor;

/**
 * The cache engine for one block list: installed as the list's {@link BlockRunner}, it decides per
 * call which blocks run (DBCache, SPEC 3; DBPrune, SPEC 4) and owns the list's {@link CacheContext}.
 * Calls on one runner are serialised.
 */
public final class CachedBlockRunner implements BlockRunner, AutoCloseable {
  private static final String HIDDEN = "hidden";
  private static final String ENCODER = "encoder";

  private final String listName;
  private final int blockCount;
  private final ForwardPattern pattern;
  private final Kernels kernels;
  private final DiffReducer reducer;
  private final boolean defaultSeparateCfg;
  private BasicCacheConfig config;
  private CalibratorConfig calibratorConfig;
  private CacheContext ctx;
  private boolean closed;
  private volatile Object owner;

  /**
   * @param separateCfg the adapter's separate-CFG flag, used when the config leaves it unset
   */
  public CachedBlockRunner(BlockList<?> list, BasicCacheConfig config, CalibratorConfig calibratorConfig,
      boolean separateCfg, Kernels kernels, DiffReducer reducer) {
    config.validateFor(list.name(), list.size());
    this.listName = list.name();
    this.blockCount = list.size();
    this.pattern = list.pattern();
    this.config = config;
    this.calibratorConfig = calibratorConfig;
    this.defaultSeparateCfg = separateCfg;
    this.kernels = kernels;
    this.reducer = reducer;
    boolean separate = config.enableSeparateCfg().orElse(separateCfg);
    if (separate && config.cfgDiffComputeSeparate() && config.cfgComputeFirst()) {
      throw new ConfigException("cfg_compute_first = true requires cfg_diff_compute_separate = false for " + listName
          + " (separate CFG is on through its adapter)");
    }
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
    return config;
  }

  public synchronized CalibratorConfig calibratorConfig() {
    return calibratorConfig;
  }

  private boolean separateCfg() {
    return config.enableSeparateCfg().orElse(defaultSeparateCfg);
  }

  private CacheContext newContext(long generation, int totalSteps) {
    return new CacheContext(config, calibratorConfig, separateCfg(), generation, totalSteps, kernels);
  }

  private void replaceContext(CacheContext next) {
    if (ctx != null) {
      ctx.close();
    }
    ctx = next;
  }

  /** SPEC 8.4, with our decisions: pipelines start fresh per generation; transformer-only calls refresh without drift. */
  private CacheContext enter(StepContext step) {
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
        config = config.withoutRefreshHint();
      }
      CacheContext next = newContext(-1, steps);
      next.carryAccumulated(ctx);
      replaceContext(next);
    }
    return ctx;
  }

  @Override
  public synchronized <A> BlockIO run(BlockList<A> list, BlockIO input, A args, StepContext step) {
    if (closed || (step != null && step.branch() == StepContext.Branch.BYPASS)) {
      return list.runRange(0, list.size(), input, args);
    }
    if (list.size() != blockCount || !list.name().equals(listName)) {
      throw new IllegalStateException("runner of " + listName + " called for " + list);
    }
    CacheContext c = enter(step);
    return config.cacheType() == CacheType.DBPRUNE
        ? runPrune(c, list, input, args, step) : runDBCache(c, list, input, args, step);
  }

  // ---------------------------------------------------------------------------------------------
  // DBCache (SPEC 3.2)
  // ---------------------------------------------------------------------------------------------

  private <A> BlockIO runDBCache(CacheContext c, BlockList<A> list, BlockIO input, A args, StepContext step) {
    int fn = config.fnComputeBlocks();
    int bn = config.bnComputeBlocks();
    int n = list.size();
    BlockIO afterFn = list.runRange(0, fn, input, args);
    // the probe: the Fn output residual (never materialised on cached steps), or the output itself
    // when the sequence changed shape inside Fn (context parallelism)
    boolean residualProbe = Tensors.sameShape(afterFn.hidden(), input.hidden());
    Probe probe = residualProbe ? new Probe(afterFn.hidden(), input.hidden()) : new Probe(afterFn.hidden(), null);
    c.markStepBegin(step);
    BranchState st = c.current;
    boolean hasResidual = hasCachedValue(st, HIDDEN);
    c.blocksTotal += n;
    if (canCache(c, st, "Fn", probe, config.residualDiffThreshold(), hasResidual, false)) {
      st.addCachedStep(c.currentStep);
      c.countCachedStep();
      BlockIO approx = applyCache(st, afterFn, HIDDEN, ENCODER);
      c.blocksComputed += fn + bn;
      return list.runRange(n - bn, n, approx, args);
    }
    st.continuousCachedSteps = 0;
    if (residualProbe) {
      st.setProbeDifference("Fn", afterFn.hidden(), input.hidden());
    } else {
      st.setProbe("Fn", afterFn.hidden());
    }
    BlockIO afterMn = list.runRange(fn, n - bn, afterFn, args);
    storeCached(st, afterFn, afterMn, HIDDEN, ENCODER);
    c.blocksComputed += n;
    return list.runRange(n - bn, n, afterMn, args);
  }

  // ---------------------------------------------------------------------------------------------
  // DBPrune (SPEC 4): per-block decisions, all six patterns
  // ---------------------------------------------------------------------------------------------

  private <A> BlockIO runPrune(CacheContext c, BlockList<A> list, BlockIO input, A args, StepContext step) {
    DBPruneConfig prune = (DBPruneConfig) config;
    int n = list.size();
    c.markStepBegin(step);
    BranchState st = c.current;
    Set<Integer> keep = nonPrunable(prune, n);
    int pruned = 0;
    BlockIO io = input;
    for (int i = 0; i < n; i++) {
      boolean prunable = !keep.contains(i);
      String hidden = "block" + i;
      String encoder = "block" + i + "_encoder";
      if (prunable) {
        double threshold = pruneThreshold(prune, st, c.currentStep);
        boolean stepAlreadyCached = !st.cachedSteps.isEmpty() && st.cachedSteps.get(st.cachedSteps.size() - 1) == c.currentStep;
        if (canCache(c, st, hidden, new Probe(io.hidden(), null), threshold, hasCachedValue(st, hidden),
            stepAlreadyCached)) {
          if (!stepAlreadyCached) {
            st.addCachedStep(c.currentStep);
            c.countCachedStep();
          }
          pruned++;
          io = applyCache(st, io, hidden, encoder);
          continue;
        }
      }
      BlockIO before = io;
      io = list.runRange(i, i + 1, before, args);
      if (prunable) {
        st.setProbe(hidden, before.hidden());
        storeCached(st, before, io, hidden, encoder);
      }
    }
    if (pruned == 0) {
      st.continuousCachedSteps = 0;
    }
    st.prunedBlocks.add(pruned);
    st.actualBlocks.add(n);
    c.blocksTotal += n;
    c.blocksComputed += n - pruned;
    return io;
  }

  private static Set<Integer> nonPrunable(DBPruneConfig prune, int n) {
    Set<Integer> keep = new TreeSet<>();
    int fn = Math.min(prune.fnComputeBlocks(), n);
    int bn = Math.min(prune.bnComputeBlocks(), n);
    for (int i = 0; i < fn; i++) {
      keep.add(i);
    }
    for (int i = n - bn; i < n; i++) {
      keep.add(i);
    }
    for (int id : prune.nonPruneBlockIds()) {
      if (id < n) {
        keep.add(id);
      }
    }
    return keep;
  }

  /** The dynamic prune threshold of SPEC 4, evaluated before each block. */
  static double pruneThreshold(DBPruneConfig prune, BranchState st, int step) {
    double base = prune.residualDiffThreshold();
    if (!prune.enableDynamicPruneThreshold()) {
      return base;
    }
    List<Double> diffs = st.pruneDiffs.get(step);
    if (diffs == null) {
      return base;
    }
    double sum = 0;
    int count = 0;
    for (int i = 0; i < Math.min(5, diffs.size()); i++) {
      if (diffs.get(i) > 0) {
        sum += diffs.get(i);
        count++;
      }
    }
    if (count == 0) {
      return base;
    }
    double relaxed = sum / count * prune.dynamicPruneThresholdRelaxRatio();
    double cap = prune.maxDynamicPruneThreshold().orElse(2 * base);
    return relaxed < cap ? Math.max(base, relaxed) : base;
  }

  // ---------------------------------------------------------------------------------------------
  // shared decision and buffers (SPEC 3.4-3.7)
  // ---------------------------------------------------------------------------------------------

  /**
   * The gates of SPEC 3.4, first match decides. {@code stepAlreadyCached} (DBPrune) means this step
   * is already counted as cached, so the step limits do not block further blocks of it.
   */
  /** The current probe: {@code value}, or the residual {@code value - before} when {@code before} is set. */
  private record Probe(Tensor value, Tensor before) {}

  private boolean canCache(CacheContext c, BranchState st, String probeName, Probe probe, double threshold,
      boolean hasResidual, boolean stepAlreadyCached) {
    int step = c.currentStep;
    if (c.inWarmup(step)) {
      return false;
    }
    int mask = c.maskAt(step);
    if (mask == 1) {
      return false;
    }
    if (mask == 0 && config.stepsComputationPolicy() == StepsPolicy.STATIC) {
      return hasResidual;  // our decision: without a stored residual the step computes (SPEC 3.4 QUIRK)
    }
    if (!stepAlreadyCached) {
      if (config.maxCachedSteps().isPresent() && st.cachedSteps.size() >= config.maxCachedSteps().getAsInt()) {
        return false;
      }
      if (config.maxContinuousCachedSteps().isPresent()) {
        int run = (!st.cachedSteps.isEmpty() && step - st.lastCachedStep == 1) ? st.continuousCachedSteps + 1 : 1;
        if (run > config.maxContinuousCachedSteps().getAsInt()) {
          return false;
        }
      }
    }
    if (config.maxAccumulatedResidualDiffThreshold().isPresent()) {
      double limit = config.maxAccumulatedResidualDiffThreshold().getAsDouble();
      if (limit > 0 && st.accumulatedResidualDiff >= limit) {
        return false;
      }
    }
    if (threshold <= 0) {
      return false;
    }
    Tensor prev = st.probe(probeName);
    if (prev == null || !hasResidual) {
      return false;
    }
    return similar(c, st, prev, probe, threshold);
  }

  /** SPEC 3.5: relative L1 with the previous probe as denominator, strict {@code <}. */
  private boolean similar(CacheContext c, BranchState st, Tensor prev, Probe probe, double threshold) {
    if (threshold >= 1.0) {
      record(c, st, -1.0);
      return true;
    }
    if (!Tensors.sameShape(prev, probe.value()) || prev.scalar_type().intern() != probe.value().scalar_type().intern()) {
      record(c, st, -2.0);
      return false;
    }
    Double diff = null;
    if (c.isCfg && !config.cfgDiffComputeSeparate() && config.cacheType() == CacheType.DBCACHE) {
      diff = c.cond.residualDiffs.get(c.currentStep);
    }
    if (diff == null) {
      RelL1Sums local = probe.before() == null ? kernels.relL1Sums(prev, probe.value())
          : kernels.relL1ResidualSums(prev, probe.value(), probe.before());
      RelL1Sums sums = reducer.reduce(local);  // SYNC: cache decision
      diff = sums.ratio();
    }
    record(c, st, diff);
    return diff < threshold;
  }

  private void record(CacheContext c, BranchState st, double diff) {
    if (config.cacheType() == CacheType.DBPRUNE) {
      st.pruneDiffs.computeIfAbsent(c.currentStep, k -> new java.util.ArrayList<>()).add(diff);
      if (diff > 0) {
        st.accumulatedResidualDiff += diff;
      }
    } else if (!st.residualDiffs.containsKey(c.currentStep)) {
      st.residualDiffs.put(c.currentStep, diff);
      if (diff > 0) {
        st.accumulatedResidualDiff += diff;
      }
    }
  }

  private boolean residualMode(boolean encoder) {
    if (calibratorConfig == null || calibratorConfig.cacheType() == CalibratorCacheType.RESIDUAL) {
      return true;
    }
    return encoder ? !calibratorConfig.enableEncoderCalibrator() : !calibratorConfig.enableCalibrator();
  }

  private boolean hasCachedValue(BranchState st, String name) {
    return st.calibrator != null ? st.calibrator.has(name) : st.residual(name) != null;
  }

  /** Stores what a cached step will reuse: the residual (or output) of the blocks just run. */
  private void storeCached(BranchState st, BlockIO before, BlockIO after, String hidden, String encoder) {
    if (st.calibrator != null) {
      st.calibrator.update(hidden, residualMode(false) ? after.hidden().sub(before.hidden()) : after.hidden());
    } else {
      st.setResidual(hidden, after.hidden(), before.hidden(), config.cacheBufferPrecision(), kernels);
    }
    if (!pattern.returnsEncoder() || after.encoder() == null || before.encoder() == null) {
      return;  // patterns 2 and 3: the blocks do not change the encoder states
    }
    if (st.encoderCalibrator != null) {
      st.encoderCalibrator.update(encoder, residualMode(true) ? after.encoder().sub(before.encoder()) : after.encoder());
    } else {
      st.setResidual(encoder, after.encoder(), before.encoder(), config.cacheBufferPrecision(), kernels);
    }
  }

  /** SPEC 3.6: add (or, in hidden-states mode, substitute) the cached values. */
  private BlockIO applyCache(BranchState st, BlockIO at, String hidden, String encoder) {
    Tensor cached = st.calibrator != null ? st.calibrator.approximate(hidden) : held(st, hidden);
    if (cached == null) {
      throw new IllegalStateException("no cached value for " + listName + "/" + hidden + " on a cached step");
    }
    // in hidden-states mode the cached value becomes the output: give the caller its own copy
    Tensor h = residualMode(false) ? cached.add(at.hidden()) : cached.clone();
    Tensor e = at.encoder();
    if (e != null && pattern.returnsEncoder()) {
      Tensor cachedE = st.encoderCalibrator != null ? st.encoderCalibrator.approximate(encoder) : held(st, encoder);
      if (cachedE != null) {
        e = residualMode(true) ? cachedE.add(e) : cachedE.clone();
      }
    }
    return new BlockIO(h, e);
  }

  private Tensor held(BranchState st, String name) {
    HeldTensor t = st.residual(name);
    return t == null ? null : t.get(kernels);
  }

  // ---------------------------------------------------------------------------------------------
  // refresh, stats, lifecycle
  // ---------------------------------------------------------------------------------------------

  /** Recreates the context with another step count (SPEC 8.4 refresh_context). */
  public synchronized void refresh(int numInferenceSteps) {
    config = config.withNumInferenceSteps(numInferenceSteps);
    replaceContext(null);
  }

  /** Recreates the context with a new config (and calibrator config, which may be null). */
  public synchronized void refresh(BasicCacheConfig newConfig, CalibratorConfig newCalibrator) {
    newConfig.validateFor(listName, blockCount);
    config = newConfig;
    calibratorConfig = newCalibrator;
    replaceContext(null);
  }

  /** The statistics of the current context (empty before the first call). */
  public synchronized CacheStats stats() {
    return CacheStats.of(listName, config, calibratorConfig, ctx);
  }

  @Override
  public synchronized void close() {
    closed = true;
    replaceContext(null);
  }

  @Override
  public String toString() {
    return "CachedBlockRunner[" + listName + ", " + config.strify() + "]";
  }
}
