package io.cachedit.models.common;

import io.cachedit.io.WeightScope;
import io.cachedit.io.WeightSharding;
import org.bytedeco.pytorch.Tensor;

/**
 * How a model instance shares its weights with the other ranks of a tensor-parallel group: a strategy
 * object handed to the model at load time through its {@link WeightScope}, like the
 * {@link AttentionBackend} or {@link SequenceParallel} it runs with. It cuts each parameter as the
 * model's {@link TensorParallelPlan} says (so each rank holds only its shard) and supplies the two
 * collectives the split layers need. {@link #NONE} is one rank.
 */
public interface TensorParallel extends WeightSharding {
  /** Ranks the weights are split over. */
  int size();

  /** This rank's index among them. */
  int rank();

  /** Whether the weights are split. */
  default boolean active() {
    return size() > 1;
  }

  /** How the module at {@code modulePath} (e.g. {@code transformer_blocks.0.attn.to_q}) is split, or null. */
  TensorParallelPlan.Style style(String modulePath);

  /** The sum of every rank's {@code partial} (a row-split layer's output); may reuse {@code partial}. */
  Tensor allReduceSum(Tensor partial);

  /** Every rank's {@code part} concatenated along {@code dim} in rank order (a column-split output made whole). */
  Tensor allGather(Tensor part, int dim);

  /** This rank's share of {@code count} (attention heads, features), which the plan's checks made divisible. */
  default long local(long count) {
    return count / size();
  }

  /** The strategy the scope's sharding is, or {@link #NONE}. */
  static TensorParallel of(WeightScope w) {
    return w.sharding() instanceof TensorParallel t ? t : NONE;
  }

  /**
   * A tensor-parallel group that models are loaded for: it makes each model class's strategy from
   * that class's plan (the loader looks the plan up by {@code _class_name}).
   */
  interface Factory {
    /** Ranks the weights are split over. */
    int size();

    /** The strategy for a model class with this plan. */
    TensorParallel forPlan(TensorParallelPlan plan);
  }

  /** One rank: nothing is split. */
  TensorParallel NONE = new TensorParallel() {
    @Override
    public int size() {
      return 1;
    }

    @Override
    public int rank() {
      return 0;
    }

    @Override
    public TensorParallelPlan.Style style(String modulePath) {
      return null;
    }

    @Override
    public Slice slice(String key, long[] shape) {
      return null;
    }

    @Override
    public Tensor allReduceSum(Tensor partial) {
      return partial;
    }

    @Override
    public Tensor allGather(Tensor part, int dim) {
      return part;
    }

    @Override
    public String toString() {
      return "NONE";
    }
  };
}
