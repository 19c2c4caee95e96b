package io.cachedit.fashion;

import io.cachedit.error.WeightLoadException;
import io.cachedit.models.common.DiffusersTransformer;
import io.cachedit.models.flux.FluxTransformer2DModel;
import io.cachedit.pipeline.FlowMatchEulerScheduler;
import io.cachedit.pipeline.FluxPipeline;
import io.cachedit.pipeline.ModelRegistry;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * The bundled Fashion-MNIST model as a diffusers-style folder: {@code model_index.json},
 * {@code transformer/} (FLUX.1 architecture), {@code text_encoder/} ({@link ClassTextEncoder}),
 * {@code scheduler/} (flow-matching Euler, shift 1). Pixel space: no VAE; 4x4 packing.
 */
public final class BundledModel implements AutoCloseable {
  /** Where the repository keeps it. */
  public static final Path DEFAULT_DIR = Path.of("models", "fashion-flux");

  private final FluxTransformer2DModel transformer;
  private final ClassTextEncoder textEncoder;
  private final FluxPipeline pipeline;

  public BundledModel(FluxTransformer2DModel transformer, ClassTextEncoder textEncoder) {
    this.transformer = transformer;
    this.textEncoder = textEncoder;
    this.pipeline = new FluxPipeline(transformer, scheduler(), 1, FlowMatchingTrainer.PACK);
  }

  /** Plain rectified flow: no shift. */
  public static FlowMatchEulerScheduler scheduler() {
    return FlowMatchEulerScheduler.staticShift(1.0);
  }

  public FluxTransformer2DModel transformer() {
    return transformer;
  }

  public ClassTextEncoder textEncoder() {
    return textEncoder;
  }

  public FluxPipeline pipeline() {
    return pipeline;
  }

  public static BundledModel load(Path dir) {
    return load(dir, null);
  }

  /**
   * Loads the bundled model for a tensor-parallel group ({@code group} null: whole weights): each
   * rank reads its shard of the transformer's split layers.
   */
  public static BundledModel load(Path dir, io.cachedit.models.common.TensorParallel.Factory group) {
    if (!Files.isRegularFile(dir.resolve("model_index.json"))) {
      throw new WeightLoadException(dir + " is not a cachedit model folder (no model_index.json); the bundled model"
          + " lives in " + DEFAULT_DIR + " of the repository");
    }
    DiffusersTransformer m = ModelRegistry.defaults().loadTransformer(dir.resolve("transformer"), ScalarType.Float,
        group);
    if (!(m instanceof FluxTransformer2DModel flux)) {
      String name = m.className();
      m.close();
      throw new WeightLoadException(dir + "/transformer is a " + name + ", not a FluxTransformer2DModel");
    }
    return new BundledModel(flux, ClassTextEncoder.load(dir.resolve("text_encoder")));
  }

  /** Writes transformer, text encoder, scheduler config and model_index.json to {@code dir}. */
  public static void save(FluxTransformer2DModel transformer, ClassTextEncoder textEncoder, Path dir) {
    try {
      Files.createDirectories(dir);
      ModelRegistry.save(transformer, dir.resolve("transformer"));
      textEncoder.save(dir.resolve("text_encoder"));
      Files.createDirectories(dir.resolve("scheduler"));
      Files.writeString(dir.resolve("scheduler").resolve("scheduler_config.json"), """
          {
            "_class_name": "FlowMatchEulerDiscreteScheduler",
            "num_train_timesteps": 1000,
            "shift": 1.0,
            "use_dynamic_shifting": false
          }
          """);
      Files.writeString(dir.resolve("model_index.json"), """
          {
            "_class_name": "CacheditFashionFluxPipeline",
            "transformer": ["cachedit", "FluxTransformer2DModel"],
            "text_encoder": ["cachedit", "ClassTextEncoder"],
            "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
            "vae": null,
            "vae_scale_factor": 1,
            "pack_factor": %d,
            "sample_size": %d
          }
          """.formatted(FlowMatchingTrainer.PACK, FashionMnist.SIDE));
    } catch (IOException e) {
      throw new WeightLoadException("cannot write model to " + dir + ": " + e.getMessage(), e);
    }
  }

  @Override
  public void close() {
    transformer.close();
    textEncoder.close();
  }
}
