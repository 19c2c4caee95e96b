package io.cachedit.cache;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * What caching did for one block list (or, aggregated, one transformer) during the current
 * generation (docs/algorithms.md section 8.4). Lists hold the current generation; {@code accumulated*} counters survive
 * force refreshes. "cfg" fields are the uncond branch of separate-CFG runs.
 *
 * @param name block-list name (or transformer name for an aggregate)
 * @param cacheOptions the effective settings, as config-file keys
 * @param cacheTag {@link BasicCacheConfig#strify()}
 * @param calibratorTag {@link CalibratorConfig#strify()} or {@code T0O0}
 * @param cachedSteps steps cached (DBPrune: steps with at least one pruned block)
 * @param residualDiffs step to diffs (one per step for DBCache, one per evaluated block for DBPrune)
 * @param cfgCachedSteps uncond-branch twin of cachedSteps
 * @param cfgResidualDiffs uncond-branch twin of residualDiffs
 * @param accumulatedCachedSteps cached calls, cond branch, across refreshes
 * @param cfgAccumulatedCachedSteps cached calls, uncond branch, across refreshes
 * @param accumulatedExecutedSteps denoising steps seen, across refreshes
 * @param accumulatedTransformerExecutedSteps transformer calls seen, across refreshes
 * @param prunedBlocks DBPrune: pruned blocks per call (cond)
 * @param actualBlocks DBPrune: blocks per call (cond)
 * @param cfgPrunedBlocks DBPrune: pruned blocks per call (uncond)
 * @param cfgActualBlocks DBPrune: blocks per call (uncond)
 * @param blocksComputed blocks actually run, across refreshes
 * @param blocksTotal blocks an uncached run would have run, across refreshes
 * @param bytesHeld bytes held by buffers and calibrators now
 * @param residualBytes bytes of the held residual buffers
 * @param residualFullBytes bytes those residuals take at full precision
 * @param decisions every decision of the current context in order (DBCache: one per call, DBPrune: one
 *     per block), up to 65,536; see {@link CacheDecision}
 * @param decisionsDropped decisions past that cap, counted only
 */
public record CacheStats(String name, Map<String, Object> cacheOptions, String cacheTag, String calibratorTag,
    List<Integer> cachedSteps, Map<Integer, List<Double>> residualDiffs, List<Integer> cfgCachedSteps,
    Map<Integer, List<Double>> cfgResidualDiffs, long accumulatedCachedSteps, long cfgAccumulatedCachedSteps,
    long accumulatedExecutedSteps, long accumulatedTransformerExecutedSteps, List<Integer> prunedBlocks,
    List<Integer> actualBlocks, List<Integer> cfgPrunedBlocks, List<Integer> cfgActualBlocks, long blocksComputed,
    long blocksTotal, long bytesHeld, long residualBytes, long residualFullBytes, List<CacheDecision> decisions,
    long decisionsDropped) {

  /** Total cached calls of both branches. */
  public long totalCachedSteps() {
    return accumulatedCachedSteps + cfgAccumulatedCachedSteps;
  }

  /** DBPrune: pruned / actual blocks over both branches (0 if nothing ran). */
  public double prunedRatio() {
    long pruned = sum(prunedBlocks) + sum(cfgPrunedBlocks);
    long actual = sum(actualBlocks) + sum(cfgActualBlocks);
    return actual == 0 ? 0 : (double) pruned / actual;
  }

  /** blocksTotal / blocksComputed: the speedup of the transformer blocks if all blocks cost the same. */
  public double idealSpeedup() {
    return blocksComputed == 0 ? 1.0 : (double) blocksTotal / blocksComputed;
  }

  /** Every recorded diff of a branch, in step order (sentinels -1, -2 included). */
  public List<Double> allDiffs(boolean cfg) {
    List<Double> all = new ArrayList<>();
    (cfg ? cfgResidualDiffs : residualDiffs).values().forEach(all::addAll);
    return all;
  }

  /** Linear-interpolation percentile (numpy's default) of the values; NaN if empty. */
  public static double percentile(List<Double> values, double p) {
    if (values.isEmpty()) {
      return Double.NaN;
    }
    List<Double> sorted = new ArrayList<>(values);
    Collections.sort(sorted);
    double pos = p / 100.0 * (sorted.size() - 1);
    int lo = (int) Math.floor(pos);
    int hi = Math.min(lo + 1, sorted.size() - 1);
    return sorted.get(lo) + (sorted.get(hi) - sorted.get(lo)) * (pos - lo);
  }

  /**
   * The markdown summary (docs/algorithms.md section 8.4): a diff-percentile table per branch that recorded diffs, the
   * prune ratio for DBPrune, and with {@code details} the cached steps and the diffs.
   */
  public String markdown(boolean details) {
    StringBuilder sb = new StringBuilder();
    sb.append("Cache stats of ").append(name).append(": ").append(cacheTag).append('_').append(calibratorTag)
        .append('\n');
    boolean prune = cacheTag.startsWith(CacheType.DBPRUNE.label());
    appendTable(sb, false, prune, details);
    if (!cfgResidualDiffs.isEmpty() || !cfgCachedSteps.isEmpty()) {
      appendTable(sb, true, prune, details);
    }
    if (prune) {
      long pruned = sum(prunedBlocks) + sum(cfgPrunedBlocks);
      long actual = sum(actualBlocks) + sum(cfgActualBlocks);
      sb.append(String.format(Locale.ROOT, "Dynamic Block Prune Ratio: %.2f%% (%d/%d)%n", 100 * prunedRatio(),
          pruned, actual));
    }
    if (details && !decisions.isEmpty()) {
      sb.append("Decisions:\n");
      for (CacheDecision d : decisions) {
        sb.append("  ").append(d).append('\n');
      }
      if (decisionsDropped > 0) {
        sb.append("  ... and ").append(decisionsDropped).append(" more (not kept)\n");
      }
    }
    if (residualFullBytes > 0 && residualBytes != residualFullBytes) {
      sb.append(String.format(Locale.ROOT, "Cached residuals: %d bytes (%d at full precision)%n", residualBytes,
          residualFullBytes));
    }
    return sb.toString();
  }

  private void appendTable(StringBuilder sb, boolean cfg, boolean prune, boolean details) {
    List<Double> diffs = allDiffs(cfg);
    List<Integer> steps = cfg ? cfgCachedSteps : cachedSteps;
    long first = prune ? sum(cfg ? cfgPrunedBlocks : prunedBlocks) : steps.size();
    if (diffs.isEmpty()) {
      return;
    }
    String label = prune ? "Pruned Blocks" : "Cache Steps";
    sb.append(cfg ? "CFG branch\n" : "");
    sb.append("| ").append(label).append(" | Diffs P00 | Diffs P25 | Diffs P50 | Diffs P75 | Diffs P95 | Diffs Min | Diffs Max |\n");
    sb.append("|---|---|---|---|---|---|---|---|\n");
    sb.append(String.format(Locale.ROOT, "| %d | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f |%n", first,
        percentile(diffs, 0), percentile(diffs, 25), percentile(diffs, 50), percentile(diffs, 75),
        percentile(diffs, 95), Collections.min(diffs), Collections.max(diffs)));
    if (details) {
      sb.append("Cached steps: ").append(steps).append('\n');
      sb.append("Residual diffs: ").append(cfg ? cfgResidualDiffs : residualDiffs).append('\n');
    }
  }

  private static long sum(List<Integer> values) {
    long s = 0;
    for (int v : values) {
      s += v;
    }
    return s;
  }
}
