package io.cachedit.cache.engine;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Cache state of one CFG branch of one block list (docs/algorithms.md section 5): its slots (one for
 * DBCache, one per block for DBPrune), cached steps, recorded diffs and counters.
 */
final class BranchState implements AutoCloseable {
  final CacheSlot[] slots;

  final List<Integer> cachedSteps = new ArrayList<>();
  /** DBCache: the first diff of each step. */
  final Map<Integer, Double> residualDiffs = new LinkedHashMap<>();
  /** DBPrune: every diff of each step, in block order. */
  final Map<Integer, List<Double>> pruneDiffs = new LinkedHashMap<>();
  final List<Integer> prunedBlocks = new ArrayList<>();
  final List<Integer> actualBlocks = new ArrayList<>();
  double accumulatedResidualDiff;
  int continuousCachedSteps;  // length of the current run of cached steps
  int lastCachedStep = Integer.MIN_VALUE;

  /** {@code name} names the branch in errors, e.g. {@code transformer_blocks (uncond)}. */
  BranchState(int slotCount, String name) {
    slots = new CacheSlot[slotCount];
    for (int i = 0; i < slotCount; i++) {
      slots[i] = new CacheSlot("cache slot " + i + " of " + name);
    }
  }

  /** Step-0 clear of the per-generation lists (docs/algorithms.md section 3.3); buffers stay until overwritten. */
  void clearLists() {
    cachedSteps.clear();
    residualDiffs.clear();
    pruneDiffs.clear();
    prunedBlocks.clear();
    actualBlocks.clear();
    accumulatedResidualDiff = 0;
    continuousCachedSteps = 0;
    lastCachedStep = Integer.MIN_VALUE;
    for (CacheSlot s : slots) {
      s.resetCalibrators();
    }
  }

  void markCalibratorsStepBegin() {
    for (CacheSlot s : slots) {
      s.markCalibratorsStepBegin();
    }
  }

  /** Whether the last cached step recorded is {@code step} (DBPrune: the step already counts as cached). */
  boolean lastCachedIs(int step) {
    return !cachedSteps.isEmpty() && cachedSteps.get(cachedSteps.size() - 1) == step;
  }

  /** Records a cached step: the list, and the run length of consecutive cached steps. */
  void addCachedStep(int step) {
    continuousCachedSteps = (!cachedSteps.isEmpty() && step - lastCachedStep == 1) ? continuousCachedSteps + 1 : 1;
    cachedSteps.add(step);
    lastCachedStep = step;
  }

  long bytesHeld() {
    long total = 0;
    for (CacheSlot s : slots) {
      total += s.bytesHeld();
    }
    return total;
  }

  long residualBytes() {
    long total = 0;
    for (CacheSlot s : slots) {
      total += s.residualBytes();
    }
    return total;
  }

  long residualFullBytes() {
    long total = 0;
    for (CacheSlot s : slots) {
      total += s.residualFullBytes();
    }
    return total;
  }

  @Override
  public void close() {
    for (CacheSlot s : slots) {
      s.close();
    }
  }
}
