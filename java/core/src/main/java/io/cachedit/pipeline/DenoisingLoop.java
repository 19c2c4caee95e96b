package io.cachedit.pipeline;

import io.cachedit.kernels.NativeScope;
import java.util.function.Function;
import java.util.function.IntConsumer;
import java.util.function.UnaryOperator;
import org.bytedeco.pytorch.Tensor;

/**
 * The one sampling loop of every flow-matching pipeline: it owns the latents and everything a pipeline
 * keeps for a generation (text conditioning, RoPE tables, ...) in one {@link NativeScope}, runs each
 * step's temporaries in a scope of their own, and applies the Euler step. A pipeline supplies only
 * what differs: what to prepare, and the velocity of a step (the transformer calls and the
 * classifier-free-guidance combination). A failure anywhere, in preparation, in a step or in the
 * {@code onStep} callback (which is how a caller cancels), frees everything the generation held.
 */
public final class DenoisingLoop {
  private DenoisingLoop() {}

  /** The model's prediction at one step, in the form the Euler step consumes. */
  @FunctionalInterface
  public interface Velocity {
    /**
     * @param step 0-based step
     * @param latents the current latents (owned by the loop: do not keep)
     */
    Tensor at(int step, Tensor latents);
  }

  /**
   * A multistep sampler replacing the Euler step (UniPC): turns the model output of step {@code i} and
   * the current latents into the next latents, keeping whatever history it needs.
   */
  @FunctionalInterface
  public interface Stepper {
    Tensor step(int i, Tensor modelOutput, Tensor sample);
  }

  /**
   * What a pipeline prepared for one generation.
   *
   * @param latents the initial latents (the loop keeps them)
   * @param sigmas the schedule with the final sigma appended: {@code steps + 1} values
   * @param velocity the prediction of each step
   * @param finish turns the final latents into the result (e.g. unpacking), or null for the latents
   * @param stepper the sampler's step, or null for flow matching's Euler step
   */
  public record Plan(Tensor latents, double[] sigmas, Velocity velocity, UnaryOperator<Tensor> finish,
      Stepper stepper) {
    /** A plan stepped with Euler. */
    public Plan(Tensor latents, double[] sigmas, Velocity velocity, UnaryOperator<Tensor> finish) {
      this(latents, sigmas, velocity, finish, null);
    }

    public Plan {
      if (latents == null || velocity == null) {
        throw new IllegalArgumentException("a plan needs initial latents and a velocity");
      }
      if (sigmas == null || sigmas.length < 2) {
        throw new IllegalArgumentException("a plan needs steps + 1 >= 2 sigmas");
      }
    }

    public int steps() {
      return sigmas.length - 1;
    }
  }

  /**
   * Runs one generation.
   *
   * @param name the pipeline, for scope names in errors
   * @param prepare builds the plan; whatever the velocity uses beyond the request's own tensors it must
   *     keep in the scope it is given (the preparation's temporaries are freed when it returns)
   * @param onStep called after each step with its index (may be null); an exception it throws stops
   *     the generation
   * @return the finished result, owned by the caller's scope
   */
  public static Tensor run(String name, Function<NativeScope, Plan> prepare, IntConsumer onStep) {
    return NativeScope.compute(name + " generation", generation -> {
      Plan plan;
      Tensor latents;
      // preparation's temporaries go when it ends: what the velocity uses must be kept in the generation
      try (NativeScope preparation = NativeScope.open(name + " preparation")) {
        plan = prepare.apply(generation);
        latents = generation.keep(plan.latents());
      }
      double[] sigmas = plan.sigmas();
      for (int i = 0; i < plan.steps(); i++) {
        try (NativeScope step = NativeScope.open(name + " step " + i)) {
          Tensor v = plan.velocity().at(i, latents);
          Tensor next = plan.stepper() != null ? plan.stepper().step(i, v, latents)
              : FlowMatchEulerScheduler.step(v, latents, sigmas[i], sigmas[i + 1]);
          latents = generation.replace(latents, next);
        }
        if (onStep != null) {
          onStep.accept(i);
        }
      }
      return plan.finish() == null ? latents : plan.finish().apply(latents);
    });
  }
}
