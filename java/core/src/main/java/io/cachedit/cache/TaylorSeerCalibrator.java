package io.cachedit.cache;

import io.cachedit.kernels.Kernels;
import io.cachedit.kernels.Tensors;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.bytedeco.pytorch.MemoryFormatOptional;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

/**
 * TaylorSeer (SPEC 6.1): keeps a ladder of divided differences of the values computed at the last
 * compute steps and predicts {@code sum_i d_i e^i / i!} at {@code e} steps past the last one. Both
 * the ladder update and the prediction are single fused kernel passes.
 *
 * <p>As in the reference, a state is created by its first update (after that step's counter
 * advance), so its counter lags the context's step by one, and the first derivative needs its
 * counter above 1: derivatives exist from the 4th computed step on; before that cached steps reuse
 * the last value.
 */
final class TaylorSeerCalibrator extends NamedStateCalibrator<TaylorSeerCalibrator.State> {
  private final int levels;  // order + 1
  private final Kernels kernels;

  static final class State extends NamedStateCalibrator.State {
    Tensor[] ladder;  // owned handles, allocated on first update
    int valid;
    Tensor prediction;  // owned, reused every cached step

    @Override
    List<Tensor> held() {
      List<Tensor> all = ladder == null ? new ArrayList<>() : new ArrayList<>(Arrays.asList(ladder));
      all.add(prediction);
      return all;
    }

    @Override
    void drop() {
      if (ladder != null) {
        for (Tensor t : ladder) {
          Tensors.release(t);
        }
      }
      Tensors.release(prediction);
      ladder = null;
      prediction = null;
      valid = 0;
    }
  }

  TaylorSeerCalibrator(int order, Kernels kernels) {
    super(State::new);
    this.levels = order + 1;
    this.kernels = kernels;
  }

  @Override
  public void update(String name, Tensor value) {
    State s = stateForUpdate(name);
    if (s.ladder != null && !Tensors.sameShape(s.ladder[0], value)) {
      s.drop();  // shape change: start over
    }
    if (s.ladder == null) {
      s.ladder = new Tensor[levels];
      for (int i = 0; i < levels; i++) {
        s.ladder[i] = Tensors.keep(torch.empty_like(value, value.options(),
            new MemoryFormatOptional(torch.MemoryFormat.Contiguous)));
      }
      s.valid = 0;
    }
    int gap = s.currentStep - s.lastComputeStep;
    int usable = s.currentStep > 1 && gap > 0 ? s.valid : 0;
    s.valid = kernels.taylorUpdate(Arrays.asList(s.ladder), usable, value, gap);
    s.lastComputeStep = s.currentStep;
  }

  @Override
  public boolean has(String name) {
    State s = state(name);
    return s != null && s.ladder != null && s.valid > 0;
  }

  @Override
  public Tensor approximate(String name) {
    State s = state(name);
    if (s == null || s.ladder == null || s.valid == 0) {
      return null;
    }
    int elapsed = s.currentStep - s.lastComputeStep;
    List<Tensor> terms = new ArrayList<>(s.valid);
    for (int i = 0; i < s.valid; i++) {
      terms.add(s.ladder[i]);
    }
    if (s.prediction == null) {
      s.prediction = Tensors.keep(torch.empty_like(s.ladder[0], s.ladder[0].options(),
          new MemoryFormatOptional(torch.MemoryFormat.Contiguous)));
    }
    kernels.taylorPredictInto(s.prediction, terms, elapsed);
    return new Tensor(s.prediction);
  }

}
