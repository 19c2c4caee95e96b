package io.cachedit.cache;

/**
 * How cached residuals are extrapolated instead of reused as they are (docs/algorithms.md section 6).
 * Calibrators never change which steps are cached; they only make the reused value better.
 */
public sealed interface CalibratorConfig permits TaylorSeerCalibratorConfig, FoCaCalibratorConfig, DMDCalibratorConfig {
  /** Calibrate the hidden-states residual. */
  boolean enableCalibrator();

  /** Calibrate the encoder-states residual too. */
  boolean enableEncoderCalibrator();

  CalibratorCacheType cacheType();

  /** Short tag: {@code T1O<order>} for TaylorSeer, {@code FoCa}, {@code DMDH<history>} for DMD. */
  String strify();

  /** The tag of "no calibrator". */
  String NONE_TAG = "T0O0";
}
