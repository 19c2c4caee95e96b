package io.cachedit.models.common;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.bytedeco.pytorch.Tensor;

/**
 * Where a model's token sequence is split across the ranks of a context-parallel group and where it
 * is gathered back: data each model class declares (as diffusers' {@code _cp_plan}), applied by the
 * model at the named points through its instance's {@link SequenceParallel}. Everything between a
 * split and its gather runs on this rank's tokens only; attention exchanges what it needs.
 *
 * @param model the model class, for messages
 * @param points the split and gather points, by name
 */
public record ContextParallelPlan(String model, Map<String, Point> points) {
  /** What happens at a point. */
  public enum Kind {
    SPLIT,
    GATHER
  }

  /**
   * One point: a tensor of {@code expectedDims} dimensions split or gathered along {@code dim}.
   *
   * @param name the point (an input name where it is one)
   * @param kind split or gather
   * @param dim the sequence dimension
   * @param expectedDims the tensor's rank
   * @param description what the point is, for docs and messages
   */
  public record Point(String name, Kind kind, int dim, int expectedDims, String description) {}

  public ContextParallelPlan {
    points = java.util.Collections.unmodifiableMap(new LinkedHashMap<>(points));
  }

  public static Point split(String name, int dim, int expectedDims, String description) {
    return new Point(name, Kind.SPLIT, dim, expectedDims, description);
  }

  public static Point gather(String name, int dim, int expectedDims, String description) {
    return new Point(name, Kind.GATHER, dim, expectedDims, description);
  }

  public static ContextParallelPlan of(String model, List<Point> points) {
    Map<String, Point> m = new LinkedHashMap<>();
    for (Point p : points) {
      if (m.put(p.name(), p) != null) {
        throw new IllegalArgumentException("point " + p.name() + " is named twice in the plan of " + model);
      }
    }
    return new ContextParallelPlan(model, m);
  }

  /** Splits {@code t} at point {@code name} (identity when {@code sp} is not active). */
  public Tensor split(SequenceParallel sp, String name, Tensor t) {
    return apply(sp, name, t, Kind.SPLIT, -1);
  }

  /**
   * Gathers {@code t} at point {@code name} (identity when {@code sp} is not active);
   * {@code fullLength} is the length of the sequence that was split.
   */
  public Tensor gather(SequenceParallel sp, String name, Tensor t, long fullLength) {
    return apply(sp, name, t, Kind.GATHER, fullLength);
  }

  private Tensor apply(SequenceParallel sp, String name, Tensor t, Kind kind, long fullLength) {
    if (!sp.active() || t == null) {
      return t;
    }
    Point p = points.get(name);
    if (p == null || p.kind() != kind) {
      throw new IllegalStateException(model + "'s context-parallel plan has no " + kind + " point " + name);
    }
    if (t.dim() != p.expectedDims()) {
      throw new IllegalArgumentException(model + " context parallelism: " + name + " must have " + p.expectedDims()
          + " dimensions to be " + (kind == Kind.SPLIT ? "split" : "gathered") + " along dim " + p.dim() + ", got "
          + java.util.Arrays.toString(t.sizes().vec().get()));
    }
    return kind == Kind.SPLIT ? sp.split(t, p.dim()) : sp.gather(t, p.dim(), fullLength);
  }
}
