package io.cachedit.cache;

import io.cachedit.error.ConfigException;
/**
 * FoCa, "forecast then calibrate" (docs/algorithms.md section 6.2): a Heun-style forecast from the last two computed values
 * and the last two (possibly predicted) values, rolled forward over consecutive cached steps.
 *
 * @param enableCalibrator calibrate the hidden-states stream
 * @param enableEncoderCalibrator calibrate the encoder stream (the reference code's default: true)
 * @param cacheType residual (default) or hidden states
 */
public record FoCaCalibratorConfig(boolean enableCalibrator, boolean enableEncoderCalibrator,
    CalibratorCacheType cacheType) implements CalibratorConfig {
  public FoCaCalibratorConfig {
    if (cacheType == null) {
      throw new ConfigException("calibrator_cache_type", null, "must be residual or hidden_states");
    }
  }

  public static FoCaCalibratorConfig defaults() {
    return new FoCaCalibratorConfig(true, true, CalibratorCacheType.RESIDUAL);
  }

  @Override
  public String strify() {
    return "FoCa";
  }
}
