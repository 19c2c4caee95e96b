package io.cachedit.pipeline;

import io.cachedit.io.JsonConfig;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * diffusers' {@code FlowMatchEulerDiscreteScheduler}: sigma schedules with a static shift
 * ({@code shift * s / (1 + (shift - 1) s)}) or a resolution-dependent dynamic shift
 * ({@code exp(mu) / (exp(mu) + (1/s - 1))}, mu from the image sequence length), optional
 * stretching to a terminal sigma, and the Euler step {@code x + (sigma_next - sigma) v} in fp32.
 *
 * @param numTrainTimesteps num_train_timesteps
 * @param shift shift (static)
 * @param useDynamicShifting use_dynamic_shifting
 * @param baseShift base_shift
 * @param maxShift max_shift
 * @param baseImageSeqLen base_image_seq_len
 * @param maxImageSeqLen max_image_seq_len
 * @param shiftTerminal shift_terminal, or NaN
 */
public record FlowMatchEulerScheduler(int numTrainTimesteps, double shift, boolean useDynamicShifting, double baseShift,
    double maxShift, int baseImageSeqLen, int maxImageSeqLen, double shiftTerminal) {

  /** FLUX.1's scheduler config (dynamic shifting, 0.5 -> 1.15 over 256 -> 4096 tokens). */
  public static FlowMatchEulerScheduler flux() {
    return new FlowMatchEulerScheduler(1000, 3.0, true, 0.5, 1.15, 256, 4096, Double.NaN);
  }

  /** A static-shift schedule (SD3: 3.0; Wan 2.1 at 480p: 3.0, 720p: 5.0). */
  public static FlowMatchEulerScheduler staticShift(double shift) {
    return new FlowMatchEulerScheduler(1000, shift, false, 0.5, 1.15, 256, 4096, Double.NaN);
  }

  /** From a {@code scheduler_config.json}. */
  public static FlowMatchEulerScheduler fromJson(JsonConfig c) {
    return new FlowMatchEulerScheduler(c.getInt("num_train_timesteps", 1000), c.getDouble("shift", 1.0),
        c.getBool("use_dynamic_shifting", false), c.getDouble("base_shift", 0.5), c.getDouble("max_shift", 1.15),
        c.getInt("base_image_seq_len", 256), c.getInt("max_image_seq_len", 4096),
        c.getDouble("shift_terminal", Double.NaN));
  }

  /** diffusers' {@code calculate_shift}: mu linear in the image sequence length. */
  public double mu(int imageSeqLen) {
    double m = (maxShift - baseShift) / (maxImageSeqLen - baseImageSeqLen);
    double b = baseShift - m * baseImageSeqLen;
    return imageSeqLen * m + b;
  }

  /**
   * The sigmas of a run, with the final 0 appended (length {@code steps + 1}).
   *
   * @param steps number of inference steps
   * @param baseSigmas the unshifted schedule, or null for {@code linspace(1, 1/N_train ..)} as the
   *     scheduler's default; pipelines such as FLUX pass {@code linspace(1, 1/steps, steps)}
   * @param mu the dynamic shift (required when dynamic shifting is on)
   */
  public double[] sigmas(int steps, double[] baseSigmas, double mu) {
    if (steps < 1) {
      throw new IllegalArgumentException("num_inference_steps must be >= 1, got " + steps);
    }
    double[] s = baseSigmas != null ? baseSigmas.clone() : defaultSigmas(steps);
    if (s.length != steps) {
      throw new IllegalArgumentException("need " + steps + " sigmas, got " + s.length);
    }
    for (int i = 0; i < s.length; i++) {
      double v = (float) s[i];  // diffusers holds sigmas as float32
      if (useDynamicShifting) {
        if (Double.isNaN(mu)) {
          throw new IllegalArgumentException("this scheduler uses dynamic shifting: pass mu");
        }
        v = Math.exp(mu) / (Math.exp(mu) + Math.pow(1 / v - 1, 1.0));
      } else {
        v = shift * v / (1 + (shift - 1) * v);
      }
      s[i] = v;
    }
    if (!Double.isNaN(shiftTerminal)) {
      double scale = (1 - s[s.length - 1]) / (1 - shiftTerminal);
      if (scale == 0) {
        throw new IllegalArgumentException("shift_terminal " + shiftTerminal + " cannot stretch a schedule whose last"
            + " sigma is 1 (use at least 2 steps); diffusers would return NaN sigmas here");
      }
      for (int i = 0; i < s.length; i++) {
        s[i] = 1 - (1 - s[i]) / scale;
      }
    }
    double[] out = java.util.Arrays.copyOf(s, steps + 1);
    for (int i = 0; i <= steps; i++) {
      out[i] = (float) out[i];
    }
    return out;
  }

  /** Timesteps (sigma x num_train_timesteps) of the first {@code steps} sigmas. */
  public double[] timesteps(double[] sigmas) {
    double[] t = new double[sigmas.length - 1];
    for (int i = 0; i < t.length; i++) {
      t[i] = (float) (sigmas[i] * numTrainTimesteps);
    }
    return t;
  }

  private double[] defaultSigmas(int steps) {
    return defaultSigmas(steps, Double.NaN);
  }

  /**
   * diffusers' {@code set_timesteps(sigmas=None)}: {@code linspace} between the scheduler's sigma_max
   * (1) and sigma_min (1/N, already shifted once in {@code __init__} when the shift is static, or the
   * value a pipeline sets: Z-Image sets 0) in timestep units, unshifted (the caller shifts).
   */
  public double[] defaultSigmas(int steps, double sigmaMinOverride) {
    double sigmaMin = 1.0 / numTrainTimesteps;
    if (!useDynamicShifting) {
      sigmaMin = (float) (shift * (float) sigmaMin / (1 + (shift - 1) * (float) sigmaMin));
    }
    if (!Double.isNaN(sigmaMinOverride)) {
      sigmaMin = sigmaMinOverride;
    }
    double max = numTrainTimesteps;
    double min = sigmaMin * numTrainTimesteps;
    double[] s = new double[steps];
    for (int i = 0; i < steps; i++) {
      double t = steps == 1 ? max : max + (min - max) * i / (steps - 1);
      s[i] = t / numTrainTimesteps;
    }
    return s;
  }

  /** {@code linspace(1.0, 1/steps, steps)}: the base schedule FLUX and Qwen-Image pipelines pass. */
  public static double[] linspaceToOneOver(int steps) {
    double[] s = new double[steps];
    for (int i = 0; i < steps; i++) {
      s[i] = steps == 1 ? 1.0 : 1.0 + (1.0 / steps - 1.0) * i / (steps - 1);
    }
    return s;
  }

  /** The Euler step: {@code sample + (sigmaNext - sigma) * modelOutput} in fp32, cast to the output's dtype. */
  public static Tensor step(Tensor modelOutput, Tensor sample, double sigma, double sigmaNext) {
    ScalarType type = modelOutput.scalar_type().intern();
    return sample.to(ScalarType.Float).add(modelOutput.to(ScalarType.Float), new Scalar(sigmaNext - sigma)).to(type);
  }
}
