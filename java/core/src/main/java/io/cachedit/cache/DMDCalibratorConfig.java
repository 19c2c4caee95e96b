package io.cachedit.cache;

import io.cachedit.error.ConfigException;
import java.util.Locale;

/**
 * Dynamic Mode Decomposition (docs/algorithms.md section 6.3): fits a linear propagator to the last
 * computed values of a stream (one SVD and eigendecomposition per new snapshot window, per batch
 * item, in float64) and forecasts by eigenvalue powers, an exponential basis where TaylorSeer's is
 * polynomial. Needs 4 evenly spaced computed values; before that it extrapolates as first-order
 * TaylorSeer does.
 *
 * @param enableCalibrator calibrate the hidden-states stream
 * @param enableEncoderCalibrator calibrate the encoder stream
 * @param cacheType residual (default) or hidden states
 * @param history computed values kept per stream (default 6; at least 4 for the fit to engage)
 * @param rank SVD truncation rank; 0 (default) keeps singular values above 1e-4 of the largest
 * @param ridge Tikhonov term added to the singular values before inverting them (default 1e-8)
 * @param svdPrecision which SVD computes the fit (default {@link SvdPrecision#MEDIUM})
 */
public record DMDCalibratorConfig(boolean enableCalibrator, boolean enableEncoderCalibrator,
    CalibratorCacheType cacheType, int history, int rank, double ridge, SvdPrecision svdPrecision)
    implements CalibratorConfig {

  /** The SVD of the snapshot matrix. */
  public enum SvdPrecision {
    /** A randomised low-rank SVD (one power iteration, fixed seed): fastest. */
    LOW,
    /** LAPACK's divide-and-conquer SVD (gesdd): the default. */
    MEDIUM,
    /** LAPACK's gesvd: slowest, most accurate. */
    HIGH
  }

  public DMDCalibratorConfig {
    if (cacheType == null) {
      throw new ConfigException("calibrator_cache_type", null, "must be residual or hidden_states");
    }
    if (history < 2) {
      throw new ConfigException("dmd_history", history, "must be >= 2 (the fit needs 4 to engage)");
    }
    if (rank < 0) {
      throw new ConfigException("dmd_rank", rank, "must be >= 0 (0 = chosen from the spectrum)");
    }
    if (!Double.isFinite(ridge) || ridge < 0) {
      throw new ConfigException("dmd_ridge", ridge, "must be a finite number >= 0");
    }
    if (svdPrecision == null) {
      throw new ConfigException("dmd_svd_precision", null, "must be low, medium or high");
    }
  }

  /** The reference defaults: both streams, residual, history 6, automatic rank, ridge 1e-8, medium. */
  public static DMDCalibratorConfig defaults() {
    return new DMDCalibratorConfig(true, true, CalibratorCacheType.RESIDUAL, 6, 0, 1e-8, SvdPrecision.MEDIUM);
  }

  public static DMDCalibratorConfig ofHistory(int history) {
    return new DMDCalibratorConfig(true, true, CalibratorCacheType.RESIDUAL, history, 0, 1e-8, SvdPrecision.MEDIUM);
  }

  static SvdPrecision precision(Object value) {
    String s = value == null ? "medium" : String.valueOf(value).trim().toLowerCase(Locale.ROOT);
    return switch (s) {
      case "low" -> SvdPrecision.LOW;
      case "medium" -> SvdPrecision.MEDIUM;
      case "high" -> SvdPrecision.HIGH;
      default -> throw new ConfigException("dmd_svd_precision", value, "must be low, medium or high");
    };
  }

  /** {@code DMDH<history>}, plus {@code l} or {@code h} for a precision other than medium. */
  @Override
  public String strify() {
    return "DMDH" + history + switch (svdPrecision) {
      case LOW -> "l";
      case MEDIUM -> "";
      case HIGH -> "h";
    };
  }
}
