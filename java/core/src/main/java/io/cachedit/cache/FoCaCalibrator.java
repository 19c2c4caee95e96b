package io.cachedit.cache;

import io.cachedit.kernels.Tensors;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;

/**
 * FoCa, forecast then calibrate (SPEC 6.2): from the two most recent computed values and the two most
 * recent values (predictions included), forecast {@code F + (e/2)(g_full + g_cur)} for up to 3
 * steps past the last computed one, blending towards the last computed value beyond; each forecast
 * becomes the newest value, so consecutive cached steps roll forward.
 */
final class FoCaCalibrator extends NamedStateCalibrator<FoCaCalibrator.State> {
  static final class State extends NamedStateCalibrator.State {
    Tensor fk;
    Tensor fkm1;
    Tensor full;
    Tensor fullPrev;

    @Override
    java.util.List<Tensor> held() {
      return list(fk, fkm1, full, fullPrev);
    }

    @Override
    void drop() {
      Tensors.release(fk);
      Tensors.release(fkm1);
      Tensors.release(full);
      Tensors.release(fullPrev);
      fk = fkm1 = full = fullPrev = null;
    }
  }

  FoCaCalibrator() {
    super(State::new);
  }

  @Override
  public void update(String name, Tensor value) {
    State s = stateForUpdate(name);
    if (s.full != null && !Tensors.sameShape(s.full, value)) {
      s.drop();
    }
    Tensors.release(s.fullPrev);
    s.fullPrev = s.full;
    s.full = Tensors.keep(value);
    Tensors.release(s.fkm1);
    s.fkm1 = s.fk;
    s.fk = Tensors.keep(value);
    s.lastComputeStep = s.currentStep;
  }

  @Override
  public boolean has(String name) {
    State s = state(name);
    return s != null && s.full != null;
  }

  @Override
  public Tensor approximate(String name) {
    State s = state(name);
    if (s == null || s.full == null) {
      return null;
    }
    if (s.fkm1 == null || s.fullPrev == null) {
      return new Tensor(s.full);
    }
    int elapsed = s.currentStep - s.lastComputeStep;
    Tensor forecast;
    try (PointerScope scope = new PointerScope()) {
      Tensor slope = s.full.sub(s.fullPrev).add(s.fk.sub(s.fkm1));  // g_full + g_cur
      Tensor f;
      if (elapsed <= 3) {
        f = s.full.add(slope.mul(new Scalar(elapsed / 2.0)));
      } else {
        double w = 3.0 / elapsed;
        f = s.full.add(slope.mul(new Scalar(1.5))).mul(new Scalar(w)).add(s.full.mul(new Scalar(1.0 - w)));
      }
      forecast = Tensors.keep(f);
    }
    Tensors.release(s.fkm1);
    s.fkm1 = s.fk;
    s.fk = forecast;
    return new Tensor(forecast);
  }

}
