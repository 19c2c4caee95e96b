package io.cachedit.models.common;

import java.util.List;
import org.bytedeco.pytorch.Tensor;

/**
 * A named, ordered list of transformer blocks with a declared {@link ForwardPattern}: the one place
 * where a model's forward hands control to whoever runs the blocks. Uncached, the list runs its
 * blocks in order; a cache engine installs a {@link BlockRunner} on this instance and decides per
 * call which blocks to run. Models never see the engine.
 *
 * <p>The name is the checkpoint's attribute name of the list (e.g. {@code transformer_blocks}).
 *
 * @param <A> the model's block-argument type
 */
public final class BlockList<A> {
  private final String name;
  private final ForwardPattern pattern;
  private final List<Block<A>> blocks;
  private BlockRunner runner = BlockRunner.SEQUENTIAL;

  public BlockList(String name, ForwardPattern pattern, List<? extends Block<A>> blocks) {
    if (name == null || name.isBlank()) {
      throw new IllegalArgumentException("block list name must not be blank");
    }
    if (pattern == null) {
      throw new IllegalArgumentException("block list " + name + " needs a forward pattern");
    }
    this.name = name;
    this.pattern = pattern;
    this.blocks = List.copyOf(blocks);
  }

  public String name() {
    return name;
  }

  public ForwardPattern pattern() {
    return pattern;
  }

  public int size() {
    return blocks.size();
  }

  public Block<A> block(int index) {
    return blocks.get(index);
  }

  /** The blocks, unmodifiable. */
  public List<Block<A>> blocks() {
    return blocks;
  }

  /**
   * Runs the list on {@code hidden} / {@code encoder} through the installed runner.
   *
   * @param step where this call sits in a generation, or null if the caller does not know
   */
  public BlockIO forward(Tensor hidden, Tensor encoder, A args, StepContext step) {
    BlockRunner current;
    synchronized (this) {
      current = runner;
    }
    return current.run(this, new BlockIO(hidden, encoder), args, step);
  }

  /**
   * Runs blocks {@code [from, to)} in order following the pattern's contract: for patterns 0-2 the
   * encoder states flow through the blocks (pattern 2 blocks leave them unchanged); for patterns
   * 3-5 blocks get no encoder states and the result carries the last block's new encoder output
   * (patterns 4, 5). An empty range returns {@code input}.
   */
  public BlockIO runRange(int from, int to, BlockIO input, A args) {
    if (from < 0 || to > blocks.size() || from > to) {
      throw new IndexOutOfBoundsException("block range [" + from + ", " + to + ") of " + name + " with "
          + blocks.size() + " blocks");
    }
    Tensor hidden = input.hidden();
    Tensor encoder = input.encoder();
    boolean feeds = pattern.feedsEncoder();
    boolean returns = pattern.returnsEncoder();
    for (int i = from; i < to; i++) {
      BlockIO out = blocks.get(i).forward(hidden, feeds ? encoder : null, args);
      if (out == null) {
        throw new IllegalStateException("block " + i + " of " + name + " returned null");
      }
      hidden = out.hidden();
      if (returns && out.encoder() != null) {
        encoder = out.encoder();  // patterns 0/1: updated encoder; 4/5: the new encoder output
      }
    }
    return new BlockIO(hidden, pattern == ForwardPattern.PATTERN_3 ? null : encoder);
  }

  /** The runner currently installed. */
  public synchronized BlockRunner runner() {
    return runner;
  }

  /**
   * Replaces the runner if the installed one is {@code expected} (compare-and-set), so two engines
   * cannot silently stack on one list.
   *
   * @return whether the swap happened
   */
  public synchronized boolean swapRunner(BlockRunner expected, BlockRunner replacement) {
    if (replacement == null) {
      throw new IllegalArgumentException("runner must not be null");
    }
    if (runner != expected) {
      return false;
    }
    runner = replacement;
    return true;
  }

  @Override
  public String toString() {
    return name + "[" + blocks.size() + " blocks, " + pattern + "]";
  }
}
