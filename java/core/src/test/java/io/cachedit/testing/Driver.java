package io.cachedit.testing;

import io.cachedit.kernels.NativeScope;
import io.cachedit.models.common.BlockIO;
import io.cachedit.models.common.StepContext;
import java.util.ArrayList;
import java.util.List;
import java.util.function.IntFunction;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;

/**
 * Drives a {@link SyntheticTransformer} like a denoising loop: per step one call (or a cond and an
 * uncond call), each step's probe chosen by the test, optionally feeding the output back into the
 * next step's input. Collects every call's output hidden states (owned; release with {@link #close}).
 */
public final class Driver implements AutoCloseable {
  private final SyntheticTransformer model;
  private final NativeScope owner = NativeScope.owner("test driver");
  private final List<Tensor> outputs = new ArrayList<>();
  private boolean separateCfgCalls;
  private boolean explicitSteps;
  private boolean feedback;
  private long generation = 1;
  private Tensor hiddenInput;
  private Tensor encoderInput;

  public Driver(SyntheticTransformer model) {
    this.model = model;
    this.hiddenInput = owner.keep(SyntheticTransformer.hiddenInput(7));
    this.encoderInput = owner.keep(SyntheticTransformer.encoderInput(7));
  }

  /** Two calls per step: cond then uncond. */
  public Driver separateCfg(boolean separate) {
    this.separateCfgCalls = separate;
    return this;
  }

  /** Pass a StepContext (pipeline mode) instead of null (transformer-only mode). */
  public Driver explicitSteps(boolean explicit) {
    this.explicitSteps = explicit;
    return this;
  }

  /** Next step's input = input - 0.1 * output, as a sampler would. */
  public Driver feedback(boolean feedback) {
    this.feedback = feedback;
    return this;
  }

  public Driver hiddenInput(Tensor hidden) {
    hiddenInput = owner.replace(hiddenInput, hidden);
    return this;
  }

  /** Runs one generation of probes.length steps; probe(t) for cond, uncondProbe(t) for uncond calls. */
  public List<Tensor> generate(double[] probes) {
    return generate(probes, probes, null);
  }

  public List<Tensor> generate(double[] probes, double[] uncondProbes, IntFunction<Tensor> mid) {
    int steps = probes.length;
    List<Tensor> gen = new ArrayList<>();
    Tensor hidden = owner.keep(hiddenInput);
    for (int t = 0; t < steps; t++) {
      StepContext.Branch[] branches = separateCfgCalls
          ? new StepContext.Branch[] {StepContext.Branch.COND, StepContext.Branch.UNCOND}
          : new StepContext.Branch[] {StepContext.Branch.SINGLE};
      Tensor last = null;
      for (StepContext.Branch branch : branches) {
        try (PointerScope scope = new PointerScope()) {
          double p = branch == StepContext.Branch.UNCOND ? uncondProbes[t] : probes[t];
          StepContext step = explicitSteps ? new StepContext(generation, t, steps, branch) : null;
          SyntheticTransformer.Args args = new SyntheticTransformer.Args(SyntheticTransformer.constant(p),
              mid == null ? null : mid.apply(t));
          BlockIO out = model.forward(hidden, encoderInput, args, step);
          Tensor kept = owner.keep(out.hidden());
          outputs.add(kept);
          gen.add(kept);
          last = kept;
        }
      }
      if (feedback) {
        try (PointerScope scope = new PointerScope()) {
          hidden = owner.replace(hidden, hidden.sub(last.mul(new Scalar(0.1))));
        }
      }
    }
    owner.release(hidden);
    generation++;
    return gen;
  }

  public static double[] constantProbes(int steps, double value) {
    double[] p = new double[steps];
    java.util.Arrays.fill(p, value);
    return p;
  }

  @Override
  public void close() {
    owner.close();
    outputs.clear();
  }
}
