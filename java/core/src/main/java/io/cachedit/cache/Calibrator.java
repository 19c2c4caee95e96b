package io.cachedit.cache;

import org.bytedeco.pytorch.Tensor;

/**
 * Extrapolates a cached value across cached steps (SPEC 6). One instance per stream (hidden,
 * encoder) and branch; it keeps named states (one per buffer) created on first update.
 */
interface Calibrator extends AutoCloseable {
  /** Drops every state's values (context step 0); names are kept. */
  void reset();

  /** Advances every existing state's step counter (once per call of this branch). */
  void markStepBegin();

  /** Records the value computed on this step. */
  void update(String name, Tensor value);

  /** Whether {@link #approximate} has a value for this name. */
  boolean has(String name);

  /** The extrapolated value for this step, or null if the state has nothing yet. */
  Tensor approximate(String name);

  /** Bytes held. */
  long bytes();

  @Override
  void close();

  static Calibrator create(CalibratorConfig config, io.cachedit.kernels.Kernels kernels) {
    if (config instanceof TaylorSeerCalibratorConfig t) {
      return new TaylorSeerCalibrator(t.order(), kernels);
    }
    return new FoCaCalibrator();
  }
}
