package io.cachedit.cache.engine;

import io.cachedit.cache.BasicCacheConfig;
import io.cachedit.cache.CacheDecision;
import io.cachedit.cache.CacheStats;
import io.cachedit.cache.CalibratorConfig;
import io.cachedit.cache.StepMask;
import io.cachedit.error.ConfigException;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import io.cachedit.models.common.StepContext;
import java.util.ArrayList;
import java.util.List;

/**
 * Mutable cache state of one block list for one generation (or, transformer-only, until a refresh):
 * step counters (docs/algorithms.md section 3.3), the two CFG branches (section 5), the resolved step
 * mask and the decision trace. A refresh replaces the whole context; the {@code accumulated*} counters
 * may be carried over (section 8.2).
 */
final class CacheContext implements AutoCloseable {
  final BasicCacheConfig config;
  final CalibratorConfig calibratorConfig;
  final boolean separateCfg;
  final long generation;   // explicit StepContext generation, or -1 (inferred from calls)
  final int[] mask;        // resolved steps computation mask, or null
  final int warmupLimit;   // W after truncation to the mask's leading run of 1s
  final BranchState cond;    // cache-dit's non-CFG branch
  final BranchState uncond;  // cache-dit's CFG branch
  /** Every decision of this context, up to {@link #MAX_TRACE} (then only counted). */
  final List<CacheDecision> decisions = new ArrayList<>();
  long decisionsDropped;

  /** Decisions kept per context: a generation of 57 pruned blocks x 100 calls fits ten times over. */
  static final int MAX_TRACE = 65_536;

  int transformerExecutedSteps;
  int executedSteps;
  int lastExplicitStep = -1;

  // survive force refreshes
  long accumulatedTransformerExecutedSteps;
  long accumulatedExecutedSteps;
  long accumulatedCachedSteps;
  long cfgAccumulatedCachedSteps;
  long blocksComputed;
  long blocksTotal;

  // the call in progress
  int currentStep;
  int currentTransformerStep;
  boolean isCfg;
  StepContext.Branch currentBranch = StepContext.Branch.SINGLE;
  BranchState current;

  CacheContext(BasicCacheConfig config, CalibratorConfig calibratorConfig, boolean separateCfg, long generation,
      int totalSteps, int slots, String listName) {
    this.config = config;
    this.calibratorConfig = calibratorConfig;
    this.separateCfg = separateCfg;
    this.generation = generation;
    StepMask stepMask = config.stepsComputationMask().orElse(null);
    if (stepMask == null) {
      this.mask = null;
    } else if (totalSteps > 0) {
      this.mask = stepMask.resolve(totalSteps);
    } else if (!stepMask.isPolicy()) {
      this.mask = stepMask.resolve(stepMask.length());
    } else {
      throw new ConfigException("steps_computation_mask \"" + stepMask + "\" is a policy: set num_inference_steps "
          + "(transformer-only use) or call through a pipeline so the step count is known");
    }
    int w = config.maxWarmupSteps();
    if (mask != null) {
      int leadingOnes = 0;
      while (leadingOnes < mask.length && mask[leadingOnes] == 1) {
        leadingOnes++;
      }
      w = Math.min(w, leadingOnes);
    }
    this.warmupLimit = w;
    this.cond = new BranchState(slots, listName);
    this.uncond = new BranchState(slots, listName + " (uncond)");
  }

  /** Carries the counters that survive a force refresh (docs/algorithms.md section 8.2). */
  void carryAccumulated(CacheContext from) {
    accumulatedTransformerExecutedSteps = from.accumulatedTransformerExecutedSteps;
    accumulatedExecutedSteps = from.accumulatedExecutedSteps;
    accumulatedCachedSteps = from.accumulatedCachedSteps;
    cfgAccumulatedCachedSteps = from.cfgAccumulatedCachedSteps;
    blocksComputed = from.blocksComputed;
    blocksTotal = from.blocksTotal;
  }

  /** Whether the next call (inferred mode) starts a new step rather than the second branch of one. */
  boolean nextCallAdvancesStep() {
    boolean cfgNext = isCfgCall(transformerExecutedSteps);
    return !separateCfg || (config.cfgComputeFirst() ? cfgNext : !cfgNext);
  }

  private boolean isCfgCall(int transformerStep) {
    return separateCfg && (config.cfgComputeFirst() ? transformerStep % 2 == 0 : transformerStep % 2 == 1);
  }

  /** Advances the counters and picks the branch of this call (docs/algorithms.md section 3.3). */
  void markStepBegin(StepContext step) {
    transformerExecutedSteps++;
    accumulatedTransformerExecutedSteps++;
    currentTransformerStep = transformerExecutedSteps - 1;
    if (step != null) {
      // our pipelines declare the step and branch; an explicit uncond call always has its own state
      isCfg = step.branch() == StepContext.Branch.UNCOND;
      currentBranch = step.branch();
      currentStep = step.step();
      if (currentStep != lastExplicitStep) {
        executedSteps++;
        accumulatedExecutedSteps++;
        lastExplicitStep = currentStep;
      }
    } else {
      isCfg = isCfgCall(currentTransformerStep);
      currentBranch = isCfg ? StepContext.Branch.UNCOND
          : separateCfg ? StepContext.Branch.COND : StepContext.Branch.SINGLE;
      boolean advance = !separateCfg || (config.cfgComputeFirst() ? isCfg : !isCfg);
      if (advance) {
        executedSteps++;
        accumulatedExecutedSteps++;
      }
      currentStep = Math.max(0, executedSteps - 1);
    }
    if (currentTransformerStep == 0) {
      cond.clearLists();
      uncond.clearLists();
    }
    current = isCfg ? uncond : cond;
    current.markCalibratorsStepBegin();
  }

  boolean inWarmup(int step) {
    return step < warmupLimit && step % config.warmupInterval() == 0;
  }

  /** 1 if the mask forces this step to compute, 0 if it is a cache step, -1 without a mask. */
  int maskAt(int step) {
    if (mask == null) {
      return -1;
    }
    return step < mask.length && mask[step] == 1 ? 1 : 0;
  }

  void countCachedStep() {
    if (isCfg) {
      cfgAccumulatedCachedSteps++;
    } else {
      accumulatedCachedSteps++;
    }
  }

  void trace(CacheDecision d) {
    if (decisions.size() < MAX_TRACE) {
      decisions.add(d);
    } else {
      decisionsDropped++;
    }
  }

  /** The statistics of this context (the runner's view for {@code summary}). */
  static CacheStats stats(String name, BasicCacheConfig config, CalibratorConfig calibrator, CacheContext ctx) {
    String calibTag = calibrator == null ? CalibratorConfig.NONE_TAG : calibrator.strify();
    if (ctx == null) {
      return new CacheStats(name, config.asMap(), config.strify(), calibTag, List.of(), Map.of(), List.of(),
          Map.of(), 0, 0, 0, 0, List.of(), List.of(), List.of(), List.of(), 0, 0, 0, 0, 0, List.of(), 0);
    }
    return new CacheStats(name, config.asMap(), config.strify(), calibTag, List.copyOf(ctx.cond.cachedSteps),
        diffs(ctx.cond), List.copyOf(ctx.uncond.cachedSteps), diffs(ctx.uncond), ctx.accumulatedCachedSteps,
        ctx.cfgAccumulatedCachedSteps, ctx.accumulatedExecutedSteps, ctx.accumulatedTransformerExecutedSteps,
        List.copyOf(ctx.cond.prunedBlocks), List.copyOf(ctx.cond.actualBlocks), List.copyOf(ctx.uncond.prunedBlocks),
        List.copyOf(ctx.uncond.actualBlocks), ctx.blocksComputed, ctx.blocksTotal, ctx.bytesHeld(),
        ctx.cond.residualBytes() + ctx.uncond.residualBytes(),
        ctx.cond.residualFullBytes() + ctx.uncond.residualFullBytes(), List.copyOf(ctx.decisions),
        ctx.decisionsDropped);
  }

  private static Map<Integer, List<Double>> diffs(BranchState st) {
    Map<Integer, List<Double>> m = new LinkedHashMap<>();
    st.residualDiffs.forEach((k, v) -> m.put(k, List.of(v)));
    st.pruneDiffs.forEach((k, v) -> m.put(k, List.copyOf(v)));
    return Collections.unmodifiableMap(m);
  }

  long bytesHeld() {
    return cond.bytesHeld() + uncond.bytesHeld();
  }

  @Override
  public void close() {
    cond.close();
    uncond.close();
  }
}
