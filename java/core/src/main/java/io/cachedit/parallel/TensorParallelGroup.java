package io.cachedit.parallel;

import io.cachedit.error.ConfigException;
import io.cachedit.models.common.TensorParallel;
import io.cachedit.models.common.TensorParallelPlan;
import org.bytedeco.pytorch.Tensor;

/**
 * A model's {@link TensorParallel} over a real group: cuts its weights as its plan says while it is
 * loaded and sums or gathers the split layers' outputs over the group while it runs
 * (docs/parallelism.md, "Tensor parallelism"). Build one per model class with {@link Binder#forPlan}.
 */
public final class TensorParallelGroup implements TensorParallel {
  private final CommGroup group;
  private final TensorParallelPlan plan;

  private TensorParallelGroup(CommGroup group, TensorParallelPlan plan) {
    this.group = group;
    this.plan = plan;
  }

  /** The tensor-parallel group of this rank in {@code config}'s mesh; every member calls it. */
  public static Binder join(ProcessGroups groups, ParallelismConfig config) {
    config.validateFor(groups.worldSize());
    if (config.tp() < 2) {
      throw new ConfigException("tp_size", config.tp(), "must be at least 2 to split weights");
    }
    ParallelMesh mesh = new ParallelMesh(config, groups.rank());
    return new Binder(ParallelMesh.group(groups, mesh, "tp", mesh.tensorRanks()));
  }

  /** Makes each model class's {@link TensorParallel} over one group from its plan. */
  public static final class Binder implements TensorParallel.Factory {
    private final CommGroup group;

    Binder(CommGroup group) {
      this.group = group;
    }

    @Override
    public int size() {
      return group.size();
    }

    @Override
    public TensorParallel forPlan(TensorParallelPlan plan) {
      return new TensorParallelGroup(group, plan);
    }

    /** The group the weights are split over. */
    public CommGroup group() {
      return group;
    }
  }

  @Override
  public int size() {
    return group.size();
  }

  @Override
  public int rank() {
    return group.rank();
  }

  @Override
  public TensorParallelPlan.Style style(String modulePath) {
    return plan.style(modulePath);
  }

  @Override
  public Slice slice(String key, long[] shape) {
    return plan.slice(key, shape, rank(), size());
  }

  @Override
  public Tensor allReduceSum(Tensor partial) {
    Tensor t = partial.is_contiguous() ? partial : partial.contiguous();
    group.allReduceSum(t);
    return t;
  }

  @Override
  public Tensor allGather(Tensor part, int dim) {
    int d = dim < 0 ? (int) part.dim() + dim : dim;
    Tensor stacked = group.allGather(part);  // [P, ...part's shape]
    return stacked.movedim(0, d).flatten(d, d + 1);
  }

  /** The group the weights are split over. */
  public CommGroup group() {
    return group;
  }

  @Override
  public String toString() {
    return "TensorParallel[" + plan.model() + " over " + group + "]";
  }
}
