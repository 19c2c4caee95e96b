package io.cachedit.models.common;

/**
 * Runs the blocks of a {@link BlockList}: the seam where a cache engine takes over. The default runs
 * every block in order; an engine installs its own runner per list instance.
 */
@FunctionalInterface
public interface BlockRunner {
  /**
   * @param step where this call sits, or null when the caller did not say (transformer-only use)
   */
  <A> BlockIO run(BlockList<A> list, BlockIO input, A args, StepContext step);

  /** Every block, in order. */
  BlockRunner SEQUENTIAL = new BlockRunner() {
    @Override
    public <A> BlockIO run(BlockList<A> list, BlockIO input, A args, StepContext step) {
      return list.runRange(0, list.size(), input, args);
    }

    @Override
    public String toString() {
      return "SEQUENTIAL";
    }
  };
}
