package io.cachedit.cache;

import io.cachedit.kernels.Tensors;
import java.util.LinkedHashMap;
import java.util.Map;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;

/**
 * FoCa, forecast then calibrate (SPEC 6.2): from the two most recent computed values and the two most
 * recent values (predictions included), forecast {@code F + (e/2)(g_full + g_cur)} for up to 3
 * steps past the last computed one, blending towards the last computed value beyond; each forecast
 * becomes the newest value, so consecutive cached steps roll forward.
 */
final class FoCaCalibrator implements Calibrator {
  private final Map<String, State> states = new LinkedHashMap<>();

  private static final class State {
    int currentStep = -1;
    int lastFullStep = -1;
    Tensor fk;
    Tensor fkm1;
    Tensor full;
    Tensor fullPrev;

    void drop() {
      Tensors.release(fk);
      Tensors.release(fkm1);
      Tensors.release(full);
      Tensors.release(fullPrev);
      fk = fkm1 = full = fullPrev = null;
    }
  }

  @Override
  public void reset() {
    for (State s : states.values()) {
      s.drop();
      s.currentStep = -1;
      s.lastFullStep = -1;
    }
  }

  @Override
  public void markStepBegin() {
    for (State s : states.values()) {
      s.currentStep++;
    }
  }

  @Override
  public void update(String name, Tensor value) {
    State s = states.computeIfAbsent(name, k -> new State());
    if (s.full != null && !Tensors.sameShape(s.full, value)) {
      s.drop();
    }
    Tensors.release(s.fullPrev);
    s.fullPrev = s.full;
    s.full = Tensors.keep(value);
    Tensors.release(s.fkm1);
    s.fkm1 = s.fk;
    s.fk = Tensors.keep(value);
    s.lastFullStep = s.currentStep;
  }

  @Override
  public boolean has(String name) {
    State s = states.get(name);
    return s != null && s.full != null;
  }

  @Override
  public Tensor approximate(String name) {
    State s = states.get(name);
    if (s == null || s.full == null) {
      return null;
    }
    if (s.fkm1 == null || s.fullPrev == null) {
      return new Tensor(s.full);
    }
    int elapsed = s.currentStep - s.lastFullStep;
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

  @Override
  public long bytes() {
    long total = 0;
    for (State s : states.values()) {
      total += Tensors.bytes(s.fk) + Tensors.bytes(s.fkm1) + Tensors.bytes(s.full) + Tensors.bytes(s.fullPrev);
    }
    return total;
  }

  @Override
  public void close() {
    for (State s : states.values()) {
      s.drop();
    }
    states.clear();
  }
}
