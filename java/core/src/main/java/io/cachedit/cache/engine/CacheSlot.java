package io.cachedit.cache.engine;

import io.cachedit.cache.BufferPrecision;
import io.cachedit.cache.CalibratorConfig;
import io.cachedit.kernels.Kernels;
import io.cachedit.kernels.NativeScope;
import io.cachedit.kernels.Tensors;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

/**
 * The buffers behind one probe point of one CFG branch: DBCache has one slot per list (the Fn probe
 * and the middle blocks' residual), DBPrune one per block (its last input and its residual). A slot
 * holds the probe of the last computed step, and what a cached step reuses: the held hidden and
 * encoder residuals (or outputs), or the calibrator states that replace them.
 */
final class CacheSlot implements AutoCloseable {
  private final NativeScope owner;  // every tensor of the slot
  private Tensor probe;
  private boolean probeOwnsBuffer;  // the probe's storage was allocated here and may be overwritten
  private HeldTensor hidden;
  private HeldTensor encoder;
  private CalibratorState hiddenCalibrator;   // created by the first calibrated update
  private CalibratorState encoderCalibrator;

  CacheSlot(String name) {
    this.owner = NativeScope.owner(name);
  }

  Tensor probe() {
    return probe;
  }

  /** Holds a handle on {@code value} itself (no copy). */
  void setProbe(Tensor value) {
    probe = owner.replace(probe, value);
    probeOwnsBuffer = false;
  }

  /** Holds {@code after - before}, reusing this slot's own buffer when it fits (no allocation). */
  void setProbeDifference(Tensor after, Tensor before) {
    if (probe != null && probeOwnsBuffer && HeldTensor.fits(probe, after)) {
      torch.sub_out(probe, after, before);
      return;
    }
    probe = owner.replace(probe, after.sub(before));
    probeOwnsBuffer = true;
  }

  HeldTensor held(boolean encoderStream) {
    return encoderStream ? encoder : hidden;
  }

  /**
   * Holds {@code after - before} (or {@code after} itself when {@code before} is null) at the given
   * precision, overwriting this slot's full-precision buffer in place when it fits.
   */
  void hold(boolean encoderStream, Tensor after, Tensor before, BufferPrecision precision, Kernels kernels) {
    HeldTensor old = held(encoderStream);
    if (before != null && old != null && old.overwriteWithDifference(after, before, precision)) {
      return;
    }
    Tensor value = before == null ? after : after.sub(before);
    HeldTensor next = HeldTensor.hold(value, precision, kernels, owner);
    if (encoderStream) {
      encoder = next;
    } else {
      hidden = next;
    }
    if (old != null) {
      old.close();
    }
  }

  CalibratorState calibrator(boolean encoderStream) {
    return encoderStream ? encoderCalibrator : hiddenCalibrator;
  }

  /** The stream's calibrator state, created now if this is its first update. */
  CalibratorState calibratorForUpdate(boolean encoderStream, CalibratorConfig config, Kernels kernels,
      boolean reduced) {
    CalibratorState s = calibrator(encoderStream);
    if (s == null) {
      s = CalibratorState.create(config, kernels, reduced, owner);
      if (encoderStream) {
        encoderCalibrator = s;
      } else {
        hiddenCalibrator = s;
      }
    }
    return s;
  }

  /** Advances the existing calibrator states (once per call of the branch). */
  void markCalibratorsStepBegin() {
    if (hiddenCalibrator != null) {
      hiddenCalibrator.markStepBegin();
    }
    if (encoderCalibrator != null) {
      encoderCalibrator.markStepBegin();
    }
  }

  /** Context step 0: calibrators restart (their existence is kept, as the reference keeps names). */
  void resetCalibrators() {
    if (hiddenCalibrator != null) {
      hiddenCalibrator.reset();
    }
    if (encoderCalibrator != null) {
      encoderCalibrator.reset();
    }
  }

  long bytesHeld() {
    long total = Tensors.bytes(probe);
    total += residualBytes();
    if (hiddenCalibrator != null) {
      total += hiddenCalibrator.bytes();
    }
    if (encoderCalibrator != null) {
      total += encoderCalibrator.bytes();
    }
    return total;
  }

  long residualBytes() {
    return (hidden == null ? 0 : hidden.bytes()) + (encoder == null ? 0 : encoder.bytes());
  }

  long residualFullBytes() {
    return (hidden == null ? 0 : hidden.fullBytes()) + (encoder == null ? 0 : encoder.fullBytes());
  }

  @Override
  public void close() {
    owner.close();
    probe = null;
    hidden = encoder = null;
    hiddenCalibrator = encoderCalibrator = null;
  }
}
