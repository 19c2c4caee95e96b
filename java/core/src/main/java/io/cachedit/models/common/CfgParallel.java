package io.cachedit.models.common;

import java.util.function.Supplier;
import org.bytedeco.pytorch.Tensor;

/**
 * How a pipeline shares classifier-free guidance with another rank (docs/parallelism.md, "CFG
 * parallelism"): the rank with {@link #index()} 0 computes the conditional branch of every step,
 * the rank with index 1 the unconditional one, and one all-gather per step gives both of them both
 * predictions. Each branch keeps its own cache state on its rank, as it does in one process.
 * {@link #NONE}, the default, computes both branches here.
 */
public interface CfgParallel {
  /** Ranks the branches are spread over: 1 or 2. */
  int size();

  /** 0: this rank computes the conditional branch; 1: the unconditional one. */
  int index();

  default boolean active() {
    return size() > 1;
  }

  /** Every rank's {@code mine} concatenated along dim 0 in rank order: [cond rows; uncond rows]. */
  Tensor gather(Tensor mine);

  /**
   * The conditional and unconditional predictions of one step: both computed here (conditional
   * first), or this rank's branch computed and the other received.
   */
  default Tensor[] branches(Supplier<Tensor> cond, Supplier<Tensor> uncond) {
    if (!active()) {
      Tensor c = cond.get();
      return new Tensor[] {c, uncond.get()};
    }
    Tensor mine = index() == 0 ? cond.get() : uncond.get();
    Tensor both = gather(mine);
    long rows = mine.size(0);
    return new Tensor[] {both.narrow(0, 0, rows), both.narrow(0, rows, rows)};
  }

  /** Both branches on this rank. */
  CfgParallel NONE = new CfgParallel() {
    @Override
    public int size() {
      return 1;
    }

    @Override
    public int index() {
      return 0;
    }

    @Override
    public Tensor gather(Tensor mine) {
      return mine;
    }

    @Override
    public String toString() {
      return "NONE";
    }
  };
}
