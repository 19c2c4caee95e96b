package io.cachedit.cache.engine;

import io.cachedit.kernels.NativeScope;
import io.cachedit.kernels.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;

/**
 * FoCa, forecast then calibrate (docs/algorithms.md section 6.2): from the two most recent computed
 * values and the two most recent values (predictions included), forecast
 * {@code F + (e/2)(g_full + g_cur)} for up to 3 steps past the last computed one, blending towards the
 * last computed value beyond; each forecast becomes the newest value, so consecutive cached steps roll
 * forward.
 */
final class FoCaState extends CalibratorState {
  private Tensor fk;
  private Tensor fkm1;
  private Tensor full;
  private Tensor fullPrev;

  FoCaState(NativeScope owner) {
    super(owner);
  }

  @Override
  void update(Tensor value) {
    if (full != null && !Tensors.sameShape(full, value)) {
      drop();
    }
    owner.release(fullPrev);
    fullPrev = full;
    full = owner.keep(value);
    owner.release(fkm1);
    fkm1 = fk;
    fk = owner.keep(value);
    lastComputeStep = currentStep;
  }

  @Override
  boolean has() {
    return full != null;
  }

  @Override
  Tensor approximate() {
    if (full == null) {
      return null;
    }
    if (fkm1 == null || fullPrev == null) {
      return new Tensor(full);
    }
    int elapsed = currentStep - lastComputeStep;
    Tensor forecast;
    try (PointerScope scope = new PointerScope()) {
      Tensor slope = full.sub(fullPrev).add(fk.sub(fkm1));  // g_full + g_cur
      Tensor f;
      if (elapsed <= 3) {
        f = full.add(slope.mul(new Scalar(elapsed / 2.0)));
      } else {
        double w = 3.0 / elapsed;
        f = full.add(slope.mul(new Scalar(1.5))).mul(new Scalar(w)).add(full.mul(new Scalar(1.0 - w)));
      }
      forecast = owner.keep(f);
    }
    owner.release(fkm1);
    fkm1 = fk;
    fk = forecast;
    return new Tensor(forecast);
  }

  @Override
  long bytes() {
    return bytesOf(fk, fkm1, full, fullPrev);
  }

  @Override
  void drop() {
    owner.release(fk);
    owner.release(fkm1);
    owner.release(full);
    owner.release(fullPrev);
    fk = fkm1 = full = fullPrev = null;
  }

  @Override
  public String toString() {
    return "FoCa";
  }
}
