package io.cachedit.cache.engine;

import io.cachedit.cache.BasicCacheConfig;
import io.cachedit.cache.BufferPrecision;
import io.cachedit.cache.CacheDecision;
import io.cachedit.cache.CalibratorCacheType;
import io.cachedit.cache.CalibratorConfig;
import io.cachedit.cache.DBCacheConfig;
import io.cachedit.cache.DBPruneConfig;
import io.cachedit.cache.DecisionListener;
import io.cachedit.cache.DecisionReason;
import io.cachedit.cache.DiffReducer;
import io.cachedit.cache.StepsPolicy;
import io.cachedit.kernels.Kernels;
import io.cachedit.kernels.RelL1Sums;
import io.cachedit.kernels.Tensors;
import io.cachedit.models.common.BlockIO;
import io.cachedit.models.common.BlockList;
import io.cachedit.models.common.ForwardPattern;
import io.cachedit.models.common.StepContext;
import org.bytedeco.pytorch.Tensor;

/**
 * One caching algorithm over one block list: {@link DBCachePolicy} (one decision per call) or
 * {@link DBPrunePolicy} (one per block). The runner picks the policy from the config's type when it is
 * installed (and again when a refresh changes the config); both share the gates, the diff, the
 * buffers and the trace defined here (docs/algorithms.md sections 3.4-3.7).
 */
abstract sealed class CachePolicy permits DBCachePolicy, DBPrunePolicy {
  /** What every policy of one runner shares. */
  record Engine(String listName, ForwardPattern pattern, Kernels kernels, DiffReducer reducer,
      DecisionListener listener, BufferPrecision defaultPrecision) {}

  /** A gate's verdict: cached or not, why, and the diff and threshold that decided (NaN when unused). */
  record Verdict(boolean cached, DecisionReason reason, double diff, double threshold) {
    static Verdict of(DecisionReason reason) {
      return new Verdict(reason.cached(), reason, Double.NaN, Double.NaN);
    }
  }

  /** The current probe: {@code value}, or the residual {@code value - before} when {@code before} is set. */
  record Probe(Tensor value, Tensor before) {}

  final BasicCacheConfig config;
  final CalibratorConfig calibrator;
  final Engine engine;
  final BufferPrecision precision;

  CachePolicy(BasicCacheConfig config, CalibratorConfig calibrator, Engine engine) {
    this.config = config;
    this.calibrator = calibrator;
    this.engine = engine;
    this.precision = config.cacheBufferPrecision().orElse(engine.defaultPrecision());
  }

  /** The policy of {@code config}'s type. */
  static CachePolicy of(BasicCacheConfig config, CalibratorConfig calibrator, Engine engine) {
    if (config instanceof DBPruneConfig prune) {
      return new DBPrunePolicy(prune, calibrator, engine);
    }
    return new DBCachePolicy((DBCacheConfig) config, calibrator, engine);
  }

  /** Slots per branch for a list of {@code blocks} blocks. */
  abstract int slots(int blocks);

  /** Runs one call of the list, deciding what to compute. */
  abstract <A> BlockIO run(CacheContext c, BlockList<A> list, BlockIO input, A args, StepContext step);

  /** Records a diff of the call in progress in the branch's statistics. */
  abstract void record(CacheContext c, BranchState st, double diff);

  /** Whether calibrator states hold reduced-precision copies. */
  boolean reducedCalibrators() {
    return false;
  }

  // ---------------------------------------------------------------------------------------------
  // the gates (docs/algorithms.md section 3.4), first match decides
  // ---------------------------------------------------------------------------------------------

  /**
   * {@code stepAlreadyCached} (DBPrune) means this step already counts as cached, so the step limits do
   * not stop further blocks of it.
   */
  final Verdict decide(CacheContext c, BranchState st, CacheSlot slot, Probe probe, double threshold,
      boolean hasCached, boolean stepAlreadyCached) {
    int step = c.currentStep;
    if (c.inWarmup(step)) {
      return Verdict.of(DecisionReason.WARMUP);
    }
    int mask = c.maskAt(step);
    if (mask == 1) {
      return Verdict.of(DecisionReason.MASK_COMPUTE);
    }
    if (mask == 0 && config.stepsComputationPolicy() == StepsPolicy.STATIC) {
      // our decision: without a stored residual the step computes
      return Verdict.of(hasCached ? DecisionReason.MASK_STATIC_CACHE : DecisionReason.MASK_STATIC_NOTHING_CACHED);
    }
    if (!stepAlreadyCached) {
      if (config.maxCachedSteps().isPresent() && st.cachedSteps.size() >= config.maxCachedSteps().getAsInt()) {
        return Verdict.of(DecisionReason.MAX_CACHED_STEPS);
      }
      if (config.maxContinuousCachedSteps().isPresent()) {
        int run = (!st.cachedSteps.isEmpty() && step - st.lastCachedStep == 1) ? st.continuousCachedSteps + 1 : 1;
        if (run > config.maxContinuousCachedSteps().getAsInt()) {
          return Verdict.of(DecisionReason.MAX_CONTINUOUS_CACHED_STEPS);
        }
      }
    }
    if (config.maxAccumulatedResidualDiffThreshold().isPresent()) {
      double limit = config.maxAccumulatedResidualDiffThreshold().getAsDouble();
      if (limit > 0 && st.accumulatedResidualDiff >= limit) {
        return Verdict.of(DecisionReason.MAX_ACCUMULATED_DIFF);
      }
    }
    if (threshold <= 0) {
      return Verdict.of(DecisionReason.THRESHOLD_ZERO);
    }
    Tensor prev = slot.probe();
    if (prev == null || !hasCached) {
      return Verdict.of(DecisionReason.NO_REFERENCE);
    }
    return similar(c, st, prev, probe, threshold);
  }

  /** Relative L1 with the previous probe as denominator, strict {@code <} (docs/algorithms.md section 3.5). */
  private Verdict similar(CacheContext c, BranchState st, Tensor prev, Probe probe, double threshold) {
    if (threshold >= 1.0) {
      record(c, st, -1.0);
      return new Verdict(true, DecisionReason.THRESHOLD_AT_LEAST_ONE, -1.0, threshold);
    }
    if (!Tensors.sameShape(prev, probe.value())
        || prev.scalar_type().intern() != probe.value().scalar_type().intern()) {
      record(c, st, -2.0);
      return new Verdict(false, DecisionReason.SHAPE_CHANGED, -2.0, threshold);
    }
    Double diff = reusedDiff(c);
    if (diff == null) {
      diff = sums(prev, probe).ratio();
    }
    record(c, st, diff);
    boolean cached = diff < threshold;
    return new Verdict(cached, cached ? DecisionReason.DIFF_BELOW_THRESHOLD : DecisionReason.DIFF_AT_OR_ABOVE_THRESHOLD,
        diff, threshold);
  }

  /** A diff this call takes from another instead of computing its own (DBCache's CFG diff sharing), or null. */
  Double reusedDiff(CacheContext c) {
    return null;
  }

  /** The diff's two sums, combined across the group by the reducer: one host sync (SYNC: cache decision). */
  private RelL1Sums sums(Tensor prev, Probe probe) {
    Kernels k = engine.kernels();
    if (engine.reducer() == DiffReducer.LOCAL) {
      return probe.before() == null ? k.relL1Sums(prev, probe.value())
          : k.relL1ResidualSums(prev, probe.value(), probe.before());
    }
    Tensor sums = probe.before() == null ? k.relL1SumsTensor(prev, probe.value())
        : k.relL1ResidualSumsTensor(prev, probe.value(), probe.before());
    engine.reducer().reduce(sums);
    return RelL1Sums.read(sums, prev.numel());
  }

  /** Appends a decision to the context's trace and tells the listener. */
  final void emit(CacheContext c, int block, Verdict v) {
    CacheDecision d = new CacheDecision(engine.listName(), c.currentTransformerStep, c.currentStep, c.currentBranch,
        block, v.cached(), v.reason(), v.diff(), v.threshold());
    c.trace(d);
    engine.listener().onDecision(d);
  }

  // ---------------------------------------------------------------------------------------------
  // what cached steps reuse (docs/algorithms.md section 3.6)
  // ---------------------------------------------------------------------------------------------

  /** Residual mode unless a calibrator of that stream extrapolates the blocks' output itself. */
  final boolean residualMode(boolean encoder) {
    if (calibrator == null || calibrator.cacheType() == CalibratorCacheType.RESIDUAL) {
      return true;
    }
    return encoder ? !calibrator.enableEncoderCalibrator() : !calibrator.enableCalibrator();
  }

  private boolean calibrated(boolean encoder) {
    return calibrator != null && (encoder ? calibrator.enableEncoderCalibrator() : calibrator.enableCalibrator());
  }

  final boolean hasCachedValue(CacheSlot slot) {
    if (calibrated(false)) {
      CalibratorState s = slot.calibrator(false);
      return s != null && s.has();
    }
    return slot.held(false) != null;
  }

  /** Stores what a cached step will reuse: the residual (or output) of the blocks just run. */
  final void storeCached(CacheSlot slot, BlockIO before, BlockIO after) {
    storeStream(slot, false, after.hidden(), before.hidden());
    if (!engine.pattern().returnsEncoder() || after.encoder() == null || before.encoder() == null) {
      return;  // patterns 2 and 3: the blocks do not change the encoder states
    }
    storeStream(slot, true, after.encoder(), before.encoder());
  }

  private void storeStream(CacheSlot slot, boolean encoder, Tensor after, Tensor before) {
    if (calibrated(encoder)) {
      Tensor value = residualMode(encoder) ? after.sub(before) : after;
      slot.calibratorForUpdate(encoder, calibrator, engine.kernels(), reducedCalibrators()).update(value);
    } else {
      slot.hold(encoder, after, before, precision, engine.kernels());
    }
  }

  /** Adds (or, in hidden-states mode, substitutes) the cached values. */
  final BlockIO applyCache(CacheSlot slot, BlockIO at, int block) {
    Tensor cached = cachedValue(slot, false);
    if (cached == null) {
      throw new IllegalStateException("no cached value for " + engine.listName()
          + (block < 0 ? "" : " block " + block) + " on a cached step");
    }
    // in hidden-states mode the cached value becomes the output: give the caller its own copy
    Tensor h = residualMode(false) ? cached.add(at.hidden()) : cached.clone();
    Tensor e = at.encoder();
    if (e != null && engine.pattern().returnsEncoder()) {
      Tensor cachedE = cachedValue(slot, true);
      if (cachedE != null) {
        e = residualMode(true) ? cachedE.add(e) : cachedE.clone();
      }
    }
    return new BlockIO(h, e);
  }

  private Tensor cachedValue(CacheSlot slot, boolean encoder) {
    if (calibrated(encoder)) {
      CalibratorState s = slot.calibrator(encoder);
      return s == null ? null : s.approximate();
    }
    HeldTensor t = slot.held(encoder);
    return t == null ? null : t.get(engine.kernels());
  }
}
