package io.cachedit.models.common;

import java.util.Map;
import org.bytedeco.pytorch.Tensor;

/**
 * A diffusion transformer from a diffusers folder: a {@link DiffusersModel} with block lists (what the
 * cache engine sees), an {@link AttentionBackend} of its own, and a forward from diffusers-named inputs.
 */
public interface DiffusersTransformer extends DiffusersModel, Transformer {
  /** The attention this instance computes with (default {@link Sdpa#AUTO}). */
  AttentionBackend attention();

  /** Replaces this instance's attention (context parallelism installs its own); null = {@link Sdpa#AUTO}. */
  void setAttention(AttentionBackend attention);

  /** Single-device attention with the given libtorch kernel. */
  default void setAttentionBackend(SdpBackend backend) {
    setAttention(Sdpa.of(backend));
  }

  /** How this instance splits its sequence across ranks (default {@link SequenceParallel#NONE}). */
  SequenceParallel sequenceParallel();

  /** Replaces this instance's sequence sharing (context parallelism installs its own); null = none. */
  void setSequenceParallel(SequenceParallel sequenceParallel);

  /**
   * Where this model class splits and gathers its sequence under context parallelism, or empty if it
   * cannot run context-parallel.
   */
  default java.util.Optional<ContextParallelPlan> contextParallelPlan() {
    return java.util.Optional.empty();
  }

  /**
   * Which layers this model class splits under tensor parallelism, or empty if it cannot run
   * tensor-parallel. The split itself happens at load time (the model's {@link TensorParallel}).
   */
  default java.util.Optional<TensorParallelPlan> tensorParallelPlan() {
    return java.util.Optional.empty();
  }

  /** The tensor-parallel group this instance was loaded for ({@link TensorParallel#NONE}: whole weights). */
  default TensorParallel tensorParallel() {
    return TensorParallel.NONE;
  }

  /** One forward from diffusers-named inputs; returns {@code sample} (list outputs stacked). */
  Tensor forward(ForwardInputs inputs, StepContext step);

  /**
   * The forward's outputs under diffusers' names: {@code sample}, or {@code sample.0}, {@code sample.1},
   * ... for models whose forward returns a list.
   */
  default Map<String, Tensor> outputs(ForwardInputs inputs, StepContext step) {
    return Map.of("sample", forward(inputs, step));
  }
}
