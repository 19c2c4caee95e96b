package io.cachedit.models.common;

/**
 * Where a transformer call sits in a generation, declared by the pipeline that makes the call and
 * passed to {@link BlockList#forward}; models pass it along without looking at it.
 *
 * @param generation identifies one generation (pipeline call); a new value starts fresh caches
 * @param step 0-based denoising step
 * @param totalSteps number of denoising steps of this generation
 * @param branch which classifier-free-guidance branch this call computes
 */
public record StepContext(long generation, int step, int totalSteps, Branch branch) {
  /** The classifier-free-guidance branch of a transformer call. */
  public enum Branch {
    /** One call per step: no CFG, guidance-distilled, or cond and uncond batched together. */
    SINGLE,
    /** The conditional (prompt) call of a step that makes two calls. */
    COND,
    /** The unconditional (negative prompt) call of a step that makes two calls: cache-dit's "CFG" branch. */
    UNCOND,
    /**
     * An extra call outside the cached branches (e.g. SD3's skip-layer guidance pass): runs every block
     * and leaves the cache state untouched.
     */
    BYPASS
  }

  public StepContext {
    if (step < 0 || totalSteps < 1 || step >= totalSteps) {
      throw new IllegalArgumentException("step must be in [0, totalSteps), got step=" + step
          + " totalSteps=" + totalSteps);
    }
    if (branch == null) {
      throw new IllegalArgumentException("branch must not be null");
    }
  }
}
