package io.cachedit.cache;

import io.cachedit.error.ConfigException;
/**
 * TaylorSeer (docs/algorithms.md section 6.1): on cached steps, predict the residual by a Taylor series from divided
 * differences of the last computed steps. Order 1-4 (default 1); both streams enabled by default.
 *
 * @param enableCalibrator calibrate the hidden-states stream
 * @param enableEncoderCalibrator calibrate the encoder stream
 * @param cacheType residual (default) or hidden states
 * @param order Taylor order 1..4
 */
public record TaylorSeerCalibratorConfig(boolean enableCalibrator, boolean enableEncoderCalibrator,
    CalibratorCacheType cacheType, int order) implements CalibratorConfig {
  public TaylorSeerCalibratorConfig {
    if (order < 1 || order > 4) {
      throw new ConfigException("taylorseer_order", order, "must be 1..4");
    }
    if (cacheType == null) {
      throw new ConfigException("calibrator_cache_type", null, "must be residual or hidden_states");
    }
  }

  /** Order 1, both streams, residual. */
  public static TaylorSeerCalibratorConfig defaults() {
    return new TaylorSeerCalibratorConfig(true, true, CalibratorCacheType.RESIDUAL, 1);
  }

  public static TaylorSeerCalibratorConfig ofOrder(int order) {
    return new TaylorSeerCalibratorConfig(true, true, CalibratorCacheType.RESIDUAL, order);
  }

  @Override
  public String strify() {
    return "T1O" + order;
  }
}
