package io.cachedit.cache.engine;

import io.cachedit.cache.CalibratorConfig;
import io.cachedit.cache.DBPruneConfig;
import io.cachedit.cache.DecisionReason;
import io.cachedit.models.common.BlockIO;
import io.cachedit.models.common.BlockList;
import io.cachedit.models.common.StepContext;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import org.bytedeco.pytorch.LongOptional;
import org.bytedeco.pytorch.Tensor;

/**
 * DBPrune (docs/algorithms.md section 4): per block, outside the first Fn, the last Bn and the
 * non-prunable ids, compare the block's input with its input the last time it ran; below the
 * (optionally dynamic) threshold the block is skipped and its stored residual added. One slot per
 * block and branch; works with all six forward patterns.
 */
final class DBPrunePolicy extends CachePolicy {
  /** The reference's probe stride with {@code force_reduce_calibrator_vram} and a calibrator. */
  static final int REDUCED_PROBE_STRIDE = 4;

  private final DBPruneConfig prune;
  private final boolean reduce;

  DBPrunePolicy(DBPruneConfig config, CalibratorConfig calibrator, Engine engine) {
    super(config, calibrator, engine);
    this.prune = config;
    this.reduce = config.forceReduceCalibratorVram() && calibrator != null;
  }

  @Override
  int slots(int blocks) {
    return blocks;
  }

  @Override
  boolean reducedCalibrators() {
    return reduce;
  }

  @Override
  <A> BlockIO run(CacheContext c, BlockList<A> list, BlockIO input, A args, StepContext step) {
    int n = list.size();
    c.markStepBegin(step);
    BranchState st = c.current;
    Set<Integer> keep = nonPrunable(n);
    int pruned = 0;
    BlockIO io = input;
    for (int i = 0; i < n; i++) {
      CacheSlot slot = st.slots[i];
      boolean prunable = !keep.contains(i);
      if (!prunable) {
        emit(c, i, Verdict.of(DecisionReason.NOT_PRUNABLE));
      } else {
        double threshold = threshold(st, c.currentStep);
        boolean stepAlreadyCached = st.lastCachedIs(c.currentStep);
        Verdict v = decide(c, st, slot, new Probe(probe(io.hidden()), null), threshold, hasCachedValue(slot),
            stepAlreadyCached);
        emit(c, i, v);
        if (v.cached()) {
          if (!stepAlreadyCached) {
            st.addCachedStep(c.currentStep);
            c.countCachedStep();
          }
          pruned++;
          io = applyCache(slot, io, i);
          continue;
        }
      }
      BlockIO before = io;
      io = list.runRange(i, i + 1, before, args);
      if (prunable) {
        Tensor p = probe(before.hidden());
        slot.setProbe(p);
        storeCached(slot, before, io);
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

  /** The block input as compared: itself, or every 4th element of its last dimension when reducing. */
  private Tensor probe(Tensor blockInput) {
    if (!reduce) {
      return blockInput;
    }
    return blockInput.slice(blockInput.dim() - 1, new LongOptional(0), new LongOptional(), REDUCED_PROBE_STRIDE)
        .contiguous();
  }

  /** Every diff is kept, in block order; none is accumulated (the reference's pruned context never accumulates). */
  @Override
  void record(CacheContext c, BranchState st, double diff) {
    st.pruneDiffs.computeIfAbsent(c.currentStep, k -> new java.util.ArrayList<>()).add(diff);
  }

  private Set<Integer> nonPrunable(int n) {
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

  /** The threshold before a block: the dynamic one when enabled (docs/algorithms.md section 4). */
  double threshold(BranchState st, int step) {
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
}
