package io.cachedit.cache.engine;

import io.cachedit.cache.CalibratorConfig;
import io.cachedit.cache.DBCacheConfig;
import io.cachedit.kernels.Tensors;
import io.cachedit.models.common.BlockIO;
import io.cachedit.models.common.BlockList;
import io.cachedit.models.common.StepContext;

/**
 * DBCache (docs/algorithms.md section 3.2): run the first {@code Fn} blocks, compare their output
 * residual with the last computed step's, then either run the middle blocks and store their residual
 * or add the stored one; always run the last {@code Bn} blocks. One slot per branch.
 */
final class DBCachePolicy extends CachePolicy {
  private final DBCacheConfig dbcache;

  DBCachePolicy(DBCacheConfig config, CalibratorConfig calibrator, Engine engine) {
    super(config, calibrator, engine);
    this.dbcache = config;
  }

  @Override
  int slots(int blocks) {
    return 1;
  }

  @Override
  <A> BlockIO run(CacheContext c, BlockList<A> list, BlockIO input, A args, StepContext step) {
    int fn = dbcache.fnComputeBlocks();
    int bn = dbcache.bnComputeBlocks();
    int n = list.size();
    BlockIO afterFn = list.runRange(0, fn, input, args);
    // the probe: the Fn output residual (never materialised on cached steps), or the output itself
    // when the sequence changed shape inside Fn (context parallelism)
    boolean residualProbe = Tensors.sameShape(afterFn.hidden(), input.hidden());
    Probe probe = residualProbe ? new Probe(afterFn.hidden(), input.hidden()) : new Probe(afterFn.hidden(), null);
    c.markStepBegin(step);
    BranchState st = c.current;
    CacheSlot slot = st.slots[0];
    c.blocksTotal += n;
    Verdict v = decide(c, st, slot, probe, dbcache.residualDiffThreshold(), hasCachedValue(slot), false);
    emit(c, -1, v);
    if (v.cached()) {
      st.addCachedStep(c.currentStep);
      c.countCachedStep();
      BlockIO approx = applyCache(slot, afterFn, -1);
      c.blocksComputed += fn + bn;
      return list.runRange(n - bn, n, approx, args);
    }
    st.continuousCachedSteps = 0;
    if (residualProbe) {
      slot.setProbeDifference(afterFn.hidden(), input.hidden());
    } else {
      slot.setProbe(afterFn.hidden());
    }
    BlockIO afterMn = list.runRange(fn, n - bn, afterFn, args);
    storeCached(slot, afterFn, afterMn);
    c.blocksComputed += n;
    return list.runRange(n - bn, n, afterMn, args);
  }

  /** The first diff of a step is the step's; positive ones add to the branch's accumulated diff. */
  @Override
  void record(CacheContext c, BranchState st, double diff) {
    if (!st.residualDiffs.containsKey(c.currentStep)) {
      st.residualDiffs.put(c.currentStep, diff);
      if (diff > 0) {
        st.accumulatedResidualDiff += diff;
      }
    }
  }

  /** With {@code cfg_diff_compute_separate = false} the uncond call reuses the cond call's diff of the step. */
  @Override
  Double reusedDiff(CacheContext c) {
    return c.isCfg && !dbcache.cfgDiffComputeSeparate() ? c.cond.residualDiffs.get(c.currentStep) : null;
  }
}
