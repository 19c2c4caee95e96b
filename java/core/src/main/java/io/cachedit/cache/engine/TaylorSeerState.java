package io.cachedit.cache.engine;

import io.cachedit.kernels.Kernels;
import io.cachedit.kernels.NativeScope;
import io.cachedit.kernels.Tensors;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.bytedeco.pytorch.MemoryFormatOptional;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

/**
 * TaylorSeer (docs/algorithms.md section 6.1): keeps a ladder of divided differences of the values
 * computed at the last computed steps and predicts {@code sum_i d_i e^i / i!} at {@code e} steps past
 * the last one. Both the ladder update and the prediction are single fused kernel passes.
 *
 * <p>Because the state lags the context by one step and the first derivative needs its counter above
 * 1, derivatives exist from the 4th computed step on; before that cached steps reuse the last value.
 */
final class TaylorSeerState extends CalibratorState {
  private final int levels;  // order + 1
  private final Kernels kernels;
  private Tensor[] ladder;  // owned, allocated on first update
  private int valid;
  private Tensor prediction;  // owned, reused every cached step

  TaylorSeerState(int order, Kernels kernels, NativeScope owner) {
    super(owner);
    this.levels = order + 1;
    this.kernels = kernels;
  }

  @Override
  void update(Tensor value) {
    if (ladder != null && !Tensors.sameShape(ladder[0], value)
        || ladder != null && ladder[0].scalar_type().intern() != value.scalar_type().intern()) {
      drop();  // shape change: start over
    }
    if (ladder == null) {
      ladder = new Tensor[levels];
      for (int i = 0; i < levels; i++) {
        ladder[i] = owner.keep(torch.empty_like(value, value.options(),
            new MemoryFormatOptional(torch.MemoryFormat.Contiguous)));
      }
      valid = 0;
    }
    int gap = currentStep - lastComputeStep;
    int usable = currentStep > 1 && gap > 0 ? valid : 0;
    valid = kernels.taylorUpdate(Arrays.asList(ladder), usable, value, gap);
    lastComputeStep = currentStep;
  }

  @Override
  boolean has() {
    return ladder != null && valid > 0;
  }

  @Override
  Tensor approximate() {
    if (!has()) {
      return null;
    }
    int elapsed = currentStep - lastComputeStep;
    List<Tensor> terms = new ArrayList<>(valid);
    for (int i = 0; i < valid; i++) {
      terms.add(ladder[i]);
    }
    if (prediction == null) {
      prediction = owner.keep(torch.empty_like(ladder[0], ladder[0].options(),
          new MemoryFormatOptional(torch.MemoryFormat.Contiguous)));
    }
    kernels.taylorPredictInto(prediction, terms, elapsed);
    return new Tensor(prediction);
  }

  @Override
  long bytes() {
    List<Tensor> all = ladder == null ? new ArrayList<>() : new ArrayList<>(Arrays.asList(ladder));
    all.add(prediction);
    return bytesOf(all.toArray(new Tensor[0]));
  }

  @Override
  void drop() {
    if (ladder != null) {
      for (Tensor t : ladder) {
        owner.release(t);
      }
    }
    owner.release(prediction);
    ladder = null;
    prediction = null;
    valid = 0;
  }

  @Override
  public String toString() {
    return "TaylorSeer(order " + (levels - 1) + ")";
  }
}
