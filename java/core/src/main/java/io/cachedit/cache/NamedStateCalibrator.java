package io.cachedit.cache;

import io.cachedit.kernels.Tensors;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;
import org.bytedeco.pytorch.Tensor;

/**
 * The bookkeeping every calibrator shares (SPEC 6): named states created on first update, a step
 * counter per state advanced once per call of the branch, reset at context step 0.
 *
 * @param <S> the per-name state
 */
abstract class NamedStateCalibrator<S extends NamedStateCalibrator.State> implements Calibrator {
  /** A state's counters and the tensors it owns. */
  abstract static class State {
    int currentStep = -1;
    int lastComputeStep = -1;

    /** The tensors this state holds (owned handles; null entries allowed). */
    abstract List<Tensor> held();

    /** Releases the held tensors and forgets them. */
    abstract void drop();
  }

  private final Map<String, S> states = new LinkedHashMap<>();
  private final Supplier<S> factory;

  NamedStateCalibrator(Supplier<S> factory) {
    this.factory = factory;
  }

  final S state(String name) {
    return states.get(name);
  }

  final S stateForUpdate(String name) {
    return states.computeIfAbsent(name, k -> factory.get());
  }

  @Override
  public final void reset() {
    for (S s : states.values()) {
      s.drop();
      s.currentStep = -1;
      s.lastComputeStep = -1;
    }
  }

  @Override
  public final void markStepBegin() {
    for (S s : states.values()) {
      s.currentStep++;
    }
  }

  /** Bytes held, counting each storage once (two handles may share one). */
  @Override
  public final long bytes() {
    Map<Long, Long> byAddress = new java.util.HashMap<>();
    for (S s : states.values()) {
      for (Tensor t : s.held()) {
        if (t != null && !t.isNull() && t.numel() > 0) {
          byAddress.put(t.data_ptr().address(), Tensors.bytes(t));
        }
      }
    }
    return byAddress.values().stream().mapToLong(Long::longValue).sum();
  }

  @Override
  public final void close() {
    for (S s : states.values()) {
      s.drop();
    }
    states.clear();
  }

  static List<Tensor> list(Tensor... tensors) {
    List<Tensor> l = new ArrayList<>(tensors.length);
    for (Tensor t : tensors) {
      l.add(t);
    }
    return l;
  }
}
