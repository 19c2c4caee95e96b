package io.cachedit.cache;

import io.cachedit.kernels.Kernels;
import io.cachedit.kernels.Tensors;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

/**
 * Cache state of one CFG branch of one block list (SPEC 5): probe and residual buffers (or the
 * calibrators that replace the residual buffers), cached steps, recorded diffs and counters.
 */
final class BranchState implements AutoCloseable {
  /** A held probe; {@code owned} ones were allocated here and may be overwritten in place. */
  private record Probe(Tensor tensor, boolean owned) {}

  // buffers by name: probes at full precision, residuals as configured
  private final Map<String, Probe> probes = new HashMap<>();
  private final Map<String, HeldTensor> residuals = new HashMap<>();
  final Calibrator calibrator;         // hidden stream, or null
  final Calibrator encoderCalibrator;  // encoder stream, or null

  final List<Integer> cachedSteps = new ArrayList<>();
  /** DBCache: the first diff of each step. */
  final Map<Integer, Double> residualDiffs = new LinkedHashMap<>();
  /** DBPrune: every diff of each step, in block order. */
  final Map<Integer, List<Double>> pruneDiffs = new LinkedHashMap<>();
  final List<Integer> prunedBlocks = new ArrayList<>();
  final List<Integer> actualBlocks = new ArrayList<>();
  double accumulatedResidualDiff;
  int continuousCachedSteps;  // length of the current run of cached steps
  int lastCachedStep = Integer.MIN_VALUE;

  BranchState(CalibratorConfig calibratorConfig, Kernels kernels) {
    boolean hidden = calibratorConfig != null && calibratorConfig.enableCalibrator();
    boolean encoder = calibratorConfig != null && calibratorConfig.enableEncoderCalibrator();
    this.calibrator = hidden ? Calibrator.create(calibratorConfig, kernels) : null;
    this.encoderCalibrator = encoder ? Calibrator.create(calibratorConfig, kernels) : null;
  }

  /** Step-0 clear of the per-generation lists (SPEC 3.3 step 4); buffers stay until overwritten. */
  void clearLists() {
    cachedSteps.clear();
    residualDiffs.clear();
    pruneDiffs.clear();
    prunedBlocks.clear();
    actualBlocks.clear();
    accumulatedResidualDiff = 0;
    continuousCachedSteps = 0;
    lastCachedStep = Integer.MIN_VALUE;
    if (calibrator != null) {
      calibrator.reset();
    }
    if (encoderCalibrator != null) {
      encoderCalibrator.reset();
    }
  }

  void markCalibratorsStepBegin() {
    if (calibrator != null) {
      calibrator.markStepBegin();
    }
    if (encoderCalibrator != null) {
      encoderCalibrator.markStepBegin();
    }
  }

  Tensor probe(String name) {
    Probe p = probes.get(name);
    return p == null ? null : p.tensor();
  }

  /** Holds a handle on {@code value} itself (no copy). */
  void setProbe(String name, Tensor value) {
    Probe old = probes.put(name, new Probe(Tensors.keep(value), false));
    if (old != null) {
      Tensors.release(old.tensor());
    }
  }

  /** Holds {@code after - before}, reusing this slot's own buffer when it fits (no allocation). */
  void setProbeDifference(String name, Tensor after, Tensor before) {
    Probe old = probes.get(name);
    if (old != null && old.owned() && HeldTensor.fits(old.tensor(), after)) {
      torch.sub_out(old.tensor(), after, before);
      return;
    }
    probes.put(name, new Probe(Tensors.keep(after.sub(before)), true));
    if (old != null) {
      Tensors.release(old.tensor());
    }
  }

  HeldTensor residual(String name) {
    return residuals.get(name);
  }

  /**
   * Holds {@code after - before} (or {@code after} itself when {@code before} is null) at the given
   * precision, overwriting this slot's full-precision buffer in place when it fits.
   */
  void setResidual(String name, Tensor after, Tensor before, BufferPrecision precision, Kernels kernels) {
    HeldTensor old = residuals.get(name);
    if (before != null && old != null && old.overwriteWithDifference(after, before, precision)) {
      return;
    }
    Tensor value = before == null ? after : after.sub(before);
    residuals.put(name, HeldTensor.hold(value, precision, kernels));
    if (old != null) {
      old.close();
    }
  }

  /** Records a cached step: the list, and the run length of consecutive cached steps. */
  void addCachedStep(int step) {
    continuousCachedSteps = (!cachedSteps.isEmpty() && step - lastCachedStep == 1) ? continuousCachedSteps + 1 : 1;
    cachedSteps.add(step);
    lastCachedStep = step;
  }

  /** Bytes held by buffers and calibrators. */
  long bytesHeld() {
    long total = 0;
    for (Probe p : probes.values()) {
      total += Tensors.bytes(p.tensor());
    }
    for (HeldTensor h : residuals.values()) {
      total += h.bytes();
    }
    if (calibrator != null) {
      total += calibrator.bytes();
    }
    if (encoderCalibrator != null) {
      total += encoderCalibrator.bytes();
    }
    return total;
  }

  /** Bytes the residual buffers would hold at full precision. */
  long residualFullBytes() {
    long total = 0;
    for (HeldTensor h : residuals.values()) {
      total += h.fullBytes();
    }
    return total;
  }

  long residualBytes() {
    long total = 0;
    for (HeldTensor h : residuals.values()) {
      total += h.bytes();
    }
    return total;
  }

  @Override
  public void close() {
    probes.values().forEach(p -> Tensors.release(p.tensor()));
    probes.clear();
    residuals.values().forEach(HeldTensor::close);
    residuals.clear();
    if (calibrator != null) {
      calibrator.close();
    }
    if (encoderCalibrator != null) {
      encoderCalibrator.close();
    }
  }
}
