package io.cachedit.cache;

import io.cachedit.models.common.StepContext;
import java.math.BigDecimal;
import java.math.MathContext;

/**
 * One decision of the cache engine: for DBCache one per transformer call of a block list, for DBPrune
 * one per block of a call. Collected in {@link CacheStats#decisions()} and passed to a
 * {@link DecisionListener} as they happen.
 *
 * @param list the block list
 * @param call the transformer call within the current context (0-based; both CFG calls count)
 * @param step the denoising step
 * @param branch the CFG branch of the call ({@code SINGLE} without separate CFG, {@code BYPASS} for
 *     calls outside the cache)
 * @param block DBPrune: the block index; DBCache: -1 (the whole call)
 * @param cached whether the call (block) was served from the cache
 * @param reason why
 * @param diff the relative L1 diff used, NaN when no diff was computed (-1: threshold >= 1, -2: shape changed)
 * @param threshold the threshold in force (DBPrune: the dynamic one when enabled), NaN when not reached
 */
public record CacheDecision(String list, int call, int step, StepContext.Branch branch, int block, boolean cached,
    DecisionReason reason, double diff, double threshold) {

  /** One line, e.g. {@code step 12 COND: cached (diff 0.0412 < 0.12)}. */
  @Override
  public String toString() {
    StringBuilder sb = new StringBuilder();
    sb.append("step ").append(step).append(' ').append(branch);
    if (block >= 0) {
      sb.append(" block ").append(block);
    }
    sb.append(": ").append(cached ? "cached" : "computed").append(" (");
    if (reason == DecisionReason.DIFF_BELOW_THRESHOLD || reason == DecisionReason.DIFF_AT_OR_ABOVE_THRESHOLD) {
      sb.append("diff ").append(num(diff)).append(cached ? " < " : " >= ").append(num(threshold));
    } else {
      sb.append(reason.description());
    }
    return sb.append(')').toString();
  }

  /** Four significant digits, no trailing zeros. */
  private static String num(double d) {
    if (!Double.isFinite(d)) {
      return Double.toString(d);
    }
    return new BigDecimal(d, new MathContext(4)).stripTrailingZeros().toPlainString();
  }
}
