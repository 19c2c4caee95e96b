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

  /**
   * The decision as JSON-ready fields (the trace format of {@code cachedit generate --json} and of the
   * server): call, step, branch, block (DBPrune only), cached, reason, diff and threshold (null when
   * none was used).
   */
  public java.util.Map<String, Object> toMap() {
    java.util.Map<String, Object> o = new java.util.LinkedHashMap<>();
    o.put("call", call);
    o.put("step", step);
    o.put("branch", branch.name().toLowerCase(java.util.Locale.ROOT));
    if (block >= 0) {
      o.put("block", block);
    }
    o.put("cached", cached);
    o.put("reason", reason.name().toLowerCase(java.util.Locale.ROOT));
    o.put("diff", Double.isFinite(diff) ? diff : null);
    o.put("threshold", Double.isFinite(threshold) ? threshold : null);
    return o;
  }

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
