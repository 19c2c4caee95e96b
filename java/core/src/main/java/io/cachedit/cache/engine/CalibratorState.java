package io.cachedit.cache.engine;

import io.cachedit.cache.CalibratorConfig;
import io.cachedit.cache.DMDCalibratorConfig;
import io.cachedit.cache.TaylorSeerCalibratorConfig;
import io.cachedit.kernels.Kernels;
import io.cachedit.kernels.NativeScope;
import io.cachedit.kernels.Tensors;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * One calibrated stream of one cache slot (docs/algorithms.md section 6): it sees the values computed
 * on computed steps and extrapolates them on cached steps. Created by the slot's first update; from
 * then on its step counter advances once per call of its branch, so it lags the context's step by one,
 * as the reference's does (elapsed times stay right).
 */
abstract class CalibratorState implements AutoCloseable {
  /** Owns the state's tensors (the slot's owner). */
  final NativeScope owner;
  int currentStep = -1;
  int lastComputeStep = -1;

  CalibratorState(NativeScope owner) {
    this.owner = owner;
  }

  /** Advances the step counter (once per call of the branch). */
  final void markStepBegin() {
    currentStep++;
  }

  /** Drops the values and restarts the counters (context step 0). */
  final void reset() {
    drop();
    currentStep = -1;
    lastComputeStep = -1;
  }

  /** Records the value computed on this step. */
  abstract void update(Tensor value);

  /** Whether {@link #approximate} has a value. */
  abstract boolean has();

  /** The extrapolated value for this step (a handle for the caller's scope), or null if there is none. */
  abstract Tensor approximate();

  /** Bytes held, each storage counted once. */
  abstract long bytes();

  /** Releases the held tensors. */
  abstract void drop();

  @Override
  public final void close() {
    drop();
  }

  /**
   * A new state for {@code config}. With {@code reduced} the state holds bfloat16 copies of fp32 or fp16
   * values and hands back values in their own dtype ({@code force_reduce_calibrator_vram}).
   */
  static CalibratorState create(CalibratorConfig config, Kernels kernels, boolean reduced, NativeScope owner) {
    CalibratorState state;
    if (config instanceof TaylorSeerCalibratorConfig t) {
      state = new TaylorSeerState(t.order(), kernels, owner);
    } else if (config instanceof DMDCalibratorConfig d) {
      state = new DMDState(d, owner);
    } else {
      state = new FoCaState(owner);
    }
    return reduced ? new Reduced(state) : state;
  }

  static long bytesOf(Tensor... tensors) {
    java.util.Map<Long, Long> byAddress = new java.util.HashMap<>();
    for (Tensor t : tensors) {
      if (t != null && !t.isNull() && t.numel() > 0) {
        byAddress.put(t.data_ptr().address(), Tensors.bytes(t));
      }
    }
    return byAddress.values().stream().mapToLong(Long::longValue).sum();
  }

  /** Holds the inner state's values in bfloat16; counters live in the inner state. */
  static final class Reduced extends CalibratorState {
    private final CalibratorState inner;
    private ScalarType dtype;

    Reduced(CalibratorState inner) {
      super(inner.owner);
      this.inner = inner;
    }

    private static boolean wide(ScalarType t) {
      return t == ScalarType.Float || t == ScalarType.Half;
    }

    @Override
    void update(Tensor value) {
      sync();
      ScalarType t = value.scalar_type().intern();
      dtype = t;
      inner.update(wide(t) ? value.to(ScalarType.BFloat16) : value);
      lastComputeStep = inner.lastComputeStep;
    }

    @Override
    boolean has() {
      return inner.has();
    }

    @Override
    Tensor approximate() {
      sync();
      Tensor a = inner.approximate();
      return a == null || dtype == null || !wide(dtype) ? a : a.to(dtype);
    }

    /** The wrapper's counters are the ones the slot advances; the inner state follows them. */
    private void sync() {
      inner.currentStep = currentStep;
      inner.lastComputeStep = lastComputeStep;
    }

    @Override
    long bytes() {
      return inner.bytes();
    }

    @Override
    void drop() {
      inner.reset();
    }

    @Override
    public String toString() {
      return "bf16 " + inner;
    }
  }
}
