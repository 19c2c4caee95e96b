package io.cachedit.cache;

import io.cachedit.kernels.Kernels;
import io.cachedit.models.common.StepContext;

/**
 * Mutable cache state of one block list for one generation (or, transformer-only, until a refresh):
 * step counters (SPEC 3.3), the two CFG branches (SPEC 5) and the resolved step mask. A refresh
 * replaces the whole context; the {@code accumulated*} counters may be carried over (SPEC 8.4).
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
  BranchState current;

  CacheContext(BasicCacheConfig config, CalibratorConfig calibratorConfig, boolean separateCfg, long generation,
      int totalSteps, Kernels kernels) {
    this.config = config;
    this.calibratorConfig = calibratorConfig;
    this.separateCfg = separateCfg;
    this.generation = generation;
    StepMask stepMask = config.stepsComputationMask();
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
    this.cond = new BranchState(calibratorConfig, kernels);
    this.uncond = new BranchState(calibratorConfig, kernels);
  }

  /** Carries the counters that survive a force refresh (SPEC 8.4). */
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

  /** SPEC 3.3: advance the counters and pick the branch of this call. */
  void markStepBegin(StepContext step) {
    transformerExecutedSteps++;
    accumulatedTransformerExecutedSteps++;
    currentTransformerStep = transformerExecutedSteps - 1;
    if (step != null) {
      // our pipelines declare the step and branch; an explicit uncond call always has its own state
      isCfg = step.branch() == StepContext.Branch.UNCOND;
      currentStep = step.step();
      if (currentStep != lastExplicitStep) {
        executedSteps++;
        accumulatedExecutedSteps++;
        lastExplicitStep = currentStep;
      }
    } else {
      isCfg = isCfgCall(currentTransformerStep);
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

  long bytesHeld() {
    return cond.bytesHeld() + uncond.bytesHeld();
  }

  @Override
  public void close() {
    cond.close();
    uncond.close();
  }
}
