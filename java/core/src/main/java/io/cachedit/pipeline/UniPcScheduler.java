package io.cachedit.pipeline;

import io.cachedit.io.JsonConfig;
import io.cachedit.kernels.NativeScope;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptions;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * diffusers' {@code UniPCMultistepScheduler} with flow sigmas and flow prediction, as Wan's folders
 * configure it: sigmas {@code linspace(1, 1/N_train, N + 1)[:-1]} shifted by {@code flow_shift} (or
 * dynamically by mu), integer timesteps {@code sigma * N_train}, the multistep UniP predictor of
 * {@code solver_order} with the UniC corrector (bh1 or bh2), lower orders at the start and (with
 * {@code lower_order_final}) at the end. The per-step coefficients are computed in float32 with
 * libtorch's scalar ops, as diffusers computes them, so the latents equal diffusers'.
 */
public record UniPcScheduler(int numTrainTimesteps, double flowShift, int solverOrder, boolean bh2,
    boolean lowerOrderFinal, Set<Integer> disableCorrector, boolean finalSigmaZero, boolean useDynamicShifting) {
  public UniPcScheduler {
    if (solverOrder < 1 || solverOrder > 4) {
      throw new IllegalArgumentException("solver_order must be 1..4, got " + solverOrder);
    }
    disableCorrector = Set.copyOf(disableCorrector);
  }

  /** Wan 2.1's scheduler config (flow shift 3 at 480p; 5 at 720p). */
  public static UniPcScheduler wan(double flowShift) {
    return new UniPcScheduler(1000, flowShift, 2, true, true, Set.of(), true, false);
  }

  /** Reads scheduler_config.json; settings outside what Wan uses are refused, naming the key. */
  public static UniPcScheduler fromJson(JsonConfig c) {
    String origin = c.origin();
    if (!c.getBool("use_flow_sigmas", false) || !"flow_prediction".equals(c.getString("prediction_type", "epsilon"))) {
      throw io.cachedit.error.ConfigException.forField("use_flow_sigmas", origin + ": cachedit runs UniPC with "
          + "use_flow_sigmas true and prediction_type flow_prediction (Wan's configuration)");
    }
    if (!c.getBool("predict_x0", true) || c.getBool("thresholding", false) || c.getBool("use_karras_sigmas", false)
        || c.getBool("use_exponential_sigmas", false) || c.getBool("use_beta_sigmas", false)) {
      throw io.cachedit.error.ConfigException.forField("predict_x0", origin + ": predict_x0 false, thresholding and "
          + "karras/exponential/beta sigmas are not supported");
    }
    String solver = c.getString("solver_type", "bh2");
    if (!solver.equals("bh1") && !solver.equals("bh2")) {
      throw io.cachedit.error.ConfigException.forField("solver_type", origin + ": solver_type " + solver
          + " must be bh1 or bh2");
    }
    String last = c.getString("final_sigmas_type", "zero");
    if (!last.equals("zero") && !last.equals("sigma_min")) {
      throw io.cachedit.error.ConfigException.forField("final_sigmas_type", origin + ": final_sigmas_type " + last
          + " must be zero or sigma_min");
    }
    if (!"linspace".equals(c.getString("timestep_spacing", "linspace"))) {
      throw io.cachedit.error.ConfigException.forField("timestep_spacing", origin + ": timestep_spacing must be "
          + "linspace with flow sigmas");
    }
    if (!Double.isNaN(c.getDouble("shift_terminal", Double.NaN))) {
      throw io.cachedit.error.ConfigException.forField("shift_terminal", origin + ": shift_terminal is not supported");
    }
    int[] disabled = c.getIntArray("disable_corrector", new int[0]);
    Set<Integer> off = new java.util.HashSet<>();
    for (int d : disabled) {
      off.add(d);
    }
    return new UniPcScheduler(c.getInt("num_train_timesteps", 1000), c.getDouble("flow_shift", 1.0),
        c.getInt("solver_order", 2), solver.equals("bh2"), c.getBool("lower_order_final", true), off,
        last.equals("zero"), c.getBool("use_dynamic_shifting", false));
  }

  /** The sigmas of {@code steps} steps with the final one appended (float32 values, as diffusers stores them). */
  public double[] sigmas(int steps, double mu) {
    if (steps < 1) {
      throw new IllegalArgumentException("num_inference_steps must be >= 1, got " + steps);
    }
    double[] s = new double[steps];
    double end = 1.0 / numTrainTimesteps;
    for (int i = 0; i < steps; i++) {  // np.linspace(1, 1/N, steps + 1)[:-1]
      s[i] = 1.0 + (end - 1.0) * i / steps;
    }
    for (int i = 0; i < steps; i++) {
      if (useDynamicShifting) {
        if (Double.isNaN(mu)) {
          throw new IllegalArgumentException("this scheduler uses dynamic shifting: pass mu");
        }
        s[i] = Math.exp(mu) / (Math.exp(mu) + (1 / s[i] - 1));
      } else {
        s[i] = flowShift * s[i] / (1 + (flowShift - 1) * s[i]);
      }
    }
    if (Math.abs(s[0] - 1) < 1e-6) {
      s[0] -= 1e-6;
    }
    double[] out = new double[steps + 1];
    for (int i = 0; i < steps; i++) {
      out[i] = s[i];
    }
    out[steps] = finalSigmaZero ? 0 : s[steps - 1];
    return out;
  }

  /** Integer timesteps {@code int(sigma * N_train)} of the first {@code steps} sigmas (computed in float64). */
  public double[] timesteps(double[] sigmas) {
    double[] t = new double[sigmas.length - 1];
    for (int i = 0; i < t.length; i++) {
      t[i] = (long) (sigmas[i] * numTrainTimesteps);
    }
    return t;
  }

  /** The multistep state of one generation; its tensors live in {@code scope}. */
  public DenoisingLoop.Stepper stepper(double[] sigmas64, NativeScope scope) {
    float[] sigmas = new float[sigmas64.length];
    for (int i = 0; i < sigmas.length; i++) {
      sigmas[i] = (float) sigmas64[i];
    }
    int steps = sigmas.length - 1;
    return new DenoisingLoop.Stepper() {
      final List<Tensor> outputs = new ArrayList<>();  // converted model outputs, oldest first, at most solverOrder
      Tensor lastSample;
      int lowerOrderNums;
      int thisOrder;

      @Override
      public Tensor step(int i, Tensor modelOutput, Tensor sample) {
        Tensor x0 = sample.sub(modelOutput.mul(new Scalar(sigmas[i])));  // flow prediction: x0 = x - sigma v
        boolean corrector = i > 0 && !disableCorrector.contains(i - 1) && lastSample != null;
        if (corrector) {
          sample = correct(i, x0, lastSample, sample, thisOrder);
        }
        outputs.add(scope.keep(x0));
        if (outputs.size() > solverOrder) {
          scope.release(outputs.remove(0));
        }
        int order = lowerOrderFinal ? Math.min(solverOrder, steps - i) : solverOrder;
        thisOrder = Math.min(order, lowerOrderNums + 1);
        Tensor kept = scope.keep(sample);
        if (lastSample != null) {
          scope.release(lastSample);
        }
        lastSample = kept;
        Tensor prev = predict(i, kept, thisOrder);
        if (lowerOrderNums < solverOrder) {
          lowerOrderNums++;
        }
        return prev;
      }

      private Tensor predict(int i, Tensor x, int order) {
        Tensor m0 = outputs.get(outputs.size() - 1);
        Tensor[] at = alphaSigma(sigmas[i + 1]);
        Tensor[] as0 = alphaSigma(sigmas[i]);
        Tensor lambdaS0 = lambda(as0);
        Tensor h = lambda(at).sub(lambdaS0);
        List<Tensor> rks = new ArrayList<>();
        List<Tensor> d1s = new ArrayList<>();
        for (int k = 1; k < order; k++) {
          Tensor mi = outputs.get(outputs.size() - 1 - k);
          Tensor rk = lambda(alphaSigma(sigmas[i - k])).sub(lambdaS0).div(h);
          rks.add(rk);
          d1s.add(mi.sub(m0).div(rk));
        }
        Coefficients co = coefficients(rks, h, order);
        Tensor xt = at[1].div(as0[1]).mul(x).sub(at[0].mul(co.hPhi1).mul(m0));
        if (!d1s.isEmpty()) {
          Tensor rhos = order == 2 ? torch.scalar_tensor(new Scalar(0.5), new TensorOptions(ScalarType.Float)).view(1)
              : torch.linalg_solve(co.r.narrow(0, 0, order - 1).narrow(1, 0, order - 1), co.b.narrow(0, 0, order - 1));
          Tensor res = weighted(rhos, d1s, d1s.size());
          xt = xt.sub(at[0].mul(co.bh).mul(res));
        }
        return xt.to(x.scalar_type());
      }

      private Tensor correct(int i, Tensor modelT, Tensor x, Tensor xt, int order) {
        Tensor m0 = outputs.get(outputs.size() - 1);
        Tensor[] at = alphaSigma(sigmas[i]);
        Tensor[] as0 = alphaSigma(sigmas[i - 1]);
        Tensor lambdaS0 = lambda(as0);
        Tensor h = lambda(at).sub(lambdaS0);
        List<Tensor> rks = new ArrayList<>();
        List<Tensor> d1s = new ArrayList<>();
        for (int k = 1; k < order; k++) {
          Tensor mi = outputs.get(outputs.size() - 1 - k);
          Tensor rk = lambda(alphaSigma(sigmas[i - (k + 1)])).sub(lambdaS0).div(h);
          rks.add(rk);
          d1s.add(mi.sub(m0).div(rk));
        }
        Coefficients co = coefficients(rks, h, order);
        Tensor rhos = order == 1 ? torch.scalar_tensor(new Scalar(0.5), new TensorOptions(ScalarType.Float)).view(1)
            : torch.linalg_solve(co.r, co.b);
        Tensor base = at[1].div(as0[1]).mul(x).sub(at[0].mul(co.hPhi1).mul(m0));
        Tensor corr = d1s.isEmpty() ? null : weighted(rhos, d1s, d1s.size());
        Tensor d1t = modelT.sub(m0);
        Tensor last = d1t.mul(rhos.select(0, rhos.size(0) - 1));
        Tensor res = corr == null ? last : corr.add(last);
        return base.sub(at[0].mul(co.bh).mul(res)).to(xt.scalar_type());
      }
    };
  }

  /** sum_k rhos[k] D1s[k] (diffusers' einsum "k,bkc...->bc..."). */
  private static Tensor weighted(Tensor rhos, List<Tensor> d1s, int n) {
    TensorVector v = new TensorVector();
    for (Tensor d : d1s) {
      v.push_back(d);
    }
    Tensor stacked = torch.stack(v, 1);  // [B, K, ...]
    long[] shape = new long[(int) stacked.dim()];
    java.util.Arrays.fill(shape, 1);
    shape[1] = n;
    return stacked.mul(rhos.narrow(0, 0, n).view(shape)).sum(new long[] {1}, false, new org.bytedeco.pytorch.ScalarTypeOptional());
  }

  private record Coefficients(Tensor hPhi1, Tensor bh, Tensor r, Tensor b) {}

  private Coefficients coefficients(List<Tensor> rksIn, Tensor h, int order) {
    TensorVector rv = new TensorVector();
    for (Tensor rk : rksIn) {
      rv.push_back(rk);
    }
    rv.push_back(torch.scalar_tensor(new Scalar(1.0), new TensorOptions(ScalarType.Float)));
    Tensor rks = torch.stack(rv, 0);
    Tensor hh = h.neg();  // predict_x0
    Tensor hPhi1 = torch.expm1(hh);
    Tensor hPhiK = hPhi1.div(hh).sub(new Scalar(1.0));
    Tensor bh = bh2 ? torch.expm1(hh) : hh;
    TensorVector r = new TensorVector();
    TensorVector b = new TensorVector();
    long factorial = 1;
    for (int i = 1; i <= order; i++) {
      r.push_back(torch.pow(rks, new Scalar((long) (i - 1))));
      b.push_back(hPhiK.mul(new Scalar(factorial)).div(bh));
      factorial *= i + 1;
      hPhiK = hPhiK.div(hh).sub(new Scalar(1.0 / factorial));
    }
    return new Coefficients(hPhi1, bh, torch.stack(r, 0), torch.stack(b, 0));
  }

  /** {alpha_t, sigma_t} of a flow sigma: {1 - sigma, sigma}, as float32 scalars. */
  private static Tensor[] alphaSigma(float sigma) {
    Tensor s = torch.scalar_tensor(new Scalar(sigma), new TensorOptions(ScalarType.Float));
    return new Tensor[] {torch.ones(new long[] {}, new TensorOptions(ScalarType.Float)).sub(s), s};
  }

  private static Tensor lambda(Tensor[] alphaSigma) {
    return torch.log(alphaSigma[0]).sub(torch.log(alphaSigma[1]));
  }
}
