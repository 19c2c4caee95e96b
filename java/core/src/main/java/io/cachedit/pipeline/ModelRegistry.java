package io.cachedit.pipeline;

import io.cachedit.error.UnsupportedModelException;
import io.cachedit.error.WeightLoadException;
import io.cachedit.io.DiffusersFolder;
import io.cachedit.io.JsonConfig;
import io.cachedit.io.SafetensorsSource;
import io.cachedit.io.WeightScope;
import io.cachedit.kernels.NativeRuntime;
import io.cachedit.models.common.DiffusersModel;
import io.cachedit.models.common.DiffusersTransformer;
import io.cachedit.models.clip.CLIPTextModel;
import io.cachedit.models.dit.DiTTransformer2DModel;
import io.cachedit.models.qwentext.QwenTextModel;
import io.cachedit.models.t5.T5EncoderModel;
import io.cachedit.models.vae.AutoencoderKL;
import io.cachedit.models.vae.AutoencoderKLWan;
import io.cachedit.models.flux.FluxTransformer2DModel;
import io.cachedit.models.flux.FluxTransformer2DModelConfig;
import io.cachedit.models.pixart.PixArtTransformer2DModel;
import io.cachedit.models.qwenimage.QwenImageTransformer2DModel;
import io.cachedit.models.sd3.SD3Transformer2DModel;
import io.cachedit.models.wan.WanTransformer3DModel;
import io.cachedit.models.zimage.ZImageTransformer2DModel;
import io.cachedit.quant.Quantizer;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import io.cachedit.io.WeightSharding;
import io.cachedit.models.common.TensorParallel;
import io.cachedit.models.common.TensorParallelPlan;
import java.util.ServiceLoader;
import java.util.TreeMap;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * Maps a config's {@code _class_name} to the class that builds it: every component a diffusers folder
 * can hold that cachedit implements (transformers today; text encoders and VAEs are
 * {@link DiffusersModel}s too). An instance, not a global: {@link #defaults()} holds the built-in models
 * plus every {@link ModelProvider} on the class path; tests and applications may build their own.
 */
public final class ModelRegistry {
  private final Map<String, ModelFactory> factories;
  private final Map<String, TensorParallelPlan> tensorParallelPlans;

  private ModelRegistry(Map<String, ModelFactory> factories, Map<String, TensorParallelPlan> tensorParallelPlans) {
    this.factories = Map.copyOf(factories);
    this.tensorParallelPlans = Map.copyOf(tensorParallelPlans);
  }

  public static Builder builder() {
    return new Builder();
  }

  /** The built-in models and those of every {@link ModelProvider} found by {@link ServiceLoader}. */
  public static ModelRegistry defaults() {
    Builder b = builder().builtins();
    for (ModelProvider provider : ServiceLoader.load(ModelProvider.class)) {
      provider.register(b);
    }
    return b.build();
  }

  /** Class names this registry can build, sorted. */
  public List<String> supported() {
    return factories.keySet().stream().sorted().toList();
  }

  public boolean supports(String className) {
    return className != null && factories.containsKey(className);
  }

  /** The tensor-parallel plan registered for a model class, if it can run tensor-parallel. */
  public Optional<TensorParallelPlan> tensorParallelPlan(String className) {
    return Optional.ofNullable(className == null ? null : tensorParallelPlans.get(className));
  }

  /** Class names with a tensor-parallel plan, sorted. */
  public List<String> tensorParallelModels() {
    return tensorParallelPlans.keySet().stream().sorted().toList();
  }

  /**
   * Checks, reading only the config, that the model at {@code path} can be split over
   * {@code tpSize} ranks: it has a plan and its head (and feature) counts divide; the error lists the
   * valid sizes.
   */
  public void checkTensorParallel(Path path, int tpSize) {
    DiffusersFolder folder = DiffusersFolder.resolve(path);
    checkTensorParallel(folder.config(), folder.configFile().toString(), tpSize);
  }

  private TensorParallelPlan checkTensorParallel(JsonConfig config, String origin, int tpSize) {
    TensorParallelPlan plan = tensorParallelPlans.get(config.className());
    if (plan == null) {
      throw new UnsupportedModelException(origin + ": " + config.className() + " has no tensor-parallel plan (which "
          + "layers are split), so it cannot run with tp_size " + tpSize + "; models with plans: "
          + tensorParallelModels());
    }
    try {
      plan.check(config, tpSize);
    } catch (io.cachedit.error.ConfigException e) {
      throw io.cachedit.error.ConfigException.forField("tp_size", origin + ": " + e.getMessage());
    }
    return plan;
  }

  /**
   * Loads the transformer at {@code path} for a tensor-parallel group: each rank reads only its shard
   * of every split weight (see {@link TensorParallelPlan}); {@code group} null or of size 1 loads
   * whole weights.
   */
  public DiffusersTransformer loadTransformer(Path path, ScalarType dtype, TensorParallel.Factory group) {
    NativeRuntime.initialize();
    DiffusersFolder folder = DiffusersFolder.resolve(path);
    return asTransformer(load(folder, dtype, group), folder.configFile().toString());
  }

  /**
   * Loads the component at {@code path} (a component folder with config.json and safetensors, sharded
   * or not, or a single safetensors file beside its config.json), converting weights to {@code dtype}.
   */
  public DiffusersModel load(Path path, ScalarType dtype) {
    NativeRuntime.initialize();
    return load(DiffusersFolder.resolveComponent(path), dtype);
  }

  /**
   * Loads the transformer at {@code path}: a pipeline folder (its {@code transformer/}), a transformer
   * folder or a single safetensors file.
   */
  public DiffusersTransformer loadTransformer(Path path, ScalarType dtype) {
    NativeRuntime.initialize();
    DiffusersFolder folder = DiffusersFolder.resolve(path);
    DiffusersModel m = load(folder, dtype);
    return asTransformer(m, folder.configFile().toString());
  }

  /**
   * Loads the model {@code folder} describes: its config.json and its weights, which may lie apart (a
   * single replacement weights file read with another folder's config).
   */
  public DiffusersModel load(DiffusersFolder folder, ScalarType dtype) {
    NativeRuntime.initialize();
    return load(folder, dtype, null);
  }

  private DiffusersModel load(DiffusersFolder folder, ScalarType dtype, TensorParallel.Factory group) {
    JsonConfig config = folder.config();
    String origin = folder.configFile().toString();
    ModelFactory factory = factory(config, origin);
    String quantization = config.getObjectJson("quantization_config");
    Map<String, Quantizer.LayerSpec> quantized = quantization == null ? null
        : Quantizer.readSpec(quantization, origin);
    if (quantized != null && group != null && group.size() > 1) {
      throw new io.cachedit.error.ConfigException(origin + " is a quantised checkpoint; tensor parallelism splits "
          + "dense weights: load the unquantised weights for the group, then quantise (each rank its shards)");
    }
    WeightSharding sharding = sharding(config, origin, group);
    try (SafetensorsSource weights = folder.openWeights()) {
      if (quantized == null) {
        WeightScope scope = WeightScope.load(weights, dtype, sharding);
        try {
          return factory.create(config, scope);
        } catch (RuntimeException e) {
          if (scope.hasProblems() && !(e instanceof WeightLoadException)) {
            // a stand-in for a missing tensor failed inside the model: the checkpoint's problems are the cause
            try {
              scope.finish();
            } catch (WeightLoadException listed) {
              listed.addSuppressed(e);
              throw listed;
            }
          }
          throw e;
        }
      }
      WeightScope scope = WeightScope.load(weights, dtype, sharding).withPlaceholders(Quantizer.quantizedKeys(quantized));
      for (String layer : quantized.keySet()) {
        scope.allowUnused(layer + ".weight_scale");
      }
      DiffusersModel model = factory.create(config, scope);
      try {
        Quantizer.restore(model, weights, quantized);
      } catch (RuntimeException e) {
        model.close();
        throw e;
      }
      return model;
    } catch (IllegalArgumentException e) {
      throw new WeightLoadException(folder.configFile() + ": " + e.getMessage(), e);
    }
  }

  /** A model with generated (seeded) weights from a config: tests, training from scratch. */
  public DiffusersModel random(String configJson, long seed, ScalarType dtype) {
    NativeRuntime.initialize();
    JsonConfig config = JsonConfig.parse(configJson, "config");
    ModelFactory factory = factory(config, "config");
    try {
      return factory.create(config, WeightScope.random(seed, dtype));
    } catch (IllegalArgumentException e) {  // a config value out of line with the others, as when loading
      throw new io.cachedit.error.ConfigException("model config: " + e.getMessage());
    }
  }

  /** {@link #random} for a transformer config. */
  public DiffusersTransformer randomTransformer(String configJson, long seed, ScalarType dtype) {
    return asTransformer(random(configJson, seed, dtype), "config");
  }

  /**
   * {@link #randomTransformer} for a tensor-parallel group: each rank keeps its shard of the model
   * {@link #randomTransformer(String, long, ScalarType)} builds with the same seed.
   */
  public DiffusersTransformer randomTransformer(String configJson, long seed, ScalarType dtype,
      TensorParallel.Factory group) {
    NativeRuntime.initialize();
    JsonConfig config = JsonConfig.parse(configJson, "config");
    WeightSharding sharding = sharding(config, "config", group);
    return asTransformer(factory(config, "config").create(config, WeightScope.random(seed, dtype, sharding)), "config");
  }

  private WeightSharding sharding(JsonConfig config, String origin, TensorParallel.Factory group) {
    if (group == null || group.size() == 1) {
      return WeightSharding.NONE;
    }
    factory(config, origin);
    return group.forPlan(checkTensorParallel(config, origin, group.size()));
  }

  /**
   * Saves a model as a diffusers folder (one file up to 5 GB per shard, as diffusers does); a
   * quantised model is saved quantised, with its {@code quantization_config} (docs/quantization.md).
   */
  public static void save(DiffusersModel model, Path dir) {
    Quantizer.save(model, dir);
  }

  private ModelFactory factory(JsonConfig config, String origin) {
    String cls = config.className();
    ModelFactory factory = cls == null ? null : factories.get(cls);
    if (factory == null) {
      throw new UnsupportedModelException(origin + ": _class_name " + (cls == null ? "is missing" : "\"" + cls
          + "\" is not supported") + "; supported: " + supported());
    }
    return factory;
  }

  private static DiffusersTransformer asTransformer(DiffusersModel m, String origin) {
    if (m instanceof DiffusersTransformer t) {
      return t;
    }
    String name = m.className();
    m.close();
    throw new UnsupportedModelException(origin + ": " + name + " is not a diffusion transformer");
  }

  /** Collects registrations; a later registration of a class name replaces an earlier one. */
  public static final class Builder {
    private final Map<String, ModelFactory> factories = new TreeMap<>();
    private final Map<String, TensorParallelPlan> plans = new TreeMap<>();

    private Builder() {}

    public Builder register(String className, ModelFactory factory) {
      if (className == null || className.isBlank() || factory == null) {
        throw new IllegalArgumentException("a model registration needs a class name and a factory");
      }
      factories.put(className, factory);
      plans.remove(className);
      return this;
    }

    /** A model class that can also run tensor-parallel, split as {@code plan} says. */
    public Builder register(String className, ModelFactory factory, TensorParallelPlan plan) {
      register(className, factory);
      if (plan != null) {
        plans.put(className, plan);
      }
      return this;
    }

    /** The seven transformer families of cachedit, and the text encoders and VAEs their pipelines load. */
    public Builder builtins() {
      register("FluxTransformer2DModel", (c, w) -> new FluxTransformer2DModel(FluxTransformer2DModelConfig.fromJson(c), w),
          FluxTransformer2DModel.TENSOR_PARALLEL_PLAN);
      register("WanTransformer3DModel", (c, w) -> new WanTransformer3DModel(WanTransformer3DModel.Config.fromJson(c), w),
          WanTransformer3DModel.TENSOR_PARALLEL_PLAN);
      register("QwenImageTransformer2DModel", (c, w) -> new QwenImageTransformer2DModel(
          QwenImageTransformer2DModel.Config.fromJson(c), w), QwenImageTransformer2DModel.TENSOR_PARALLEL_PLAN);
      register("SD3Transformer2DModel", (c, w) -> new SD3Transformer2DModel(SD3Transformer2DModel.Config.fromJson(c), w),
          SD3Transformer2DModel.TENSOR_PARALLEL_PLAN);
      register("ZImageTransformer2DModel", (c, w) -> new ZImageTransformer2DModel(
          ZImageTransformer2DModel.Config.fromJson(c), w), ZImageTransformer2DModel.TENSOR_PARALLEL_PLAN);
      register("DiTTransformer2DModel", (c, w) -> new DiTTransformer2DModel(DiTTransformer2DModel.Config.fromJson(c), w));
      register("PixArtTransformer2DModel", (c, w) -> new PixArtTransformer2DModel(
          PixArtTransformer2DModel.Config.fromJson(c), w));
      // text encoders (transformers) and VAEs of the pipelines
      register("CLIPTextModel", (c, w) -> new CLIPTextModel(CLIPTextModel.Config.fromJson(c), w, false, c.json()));
      register("CLIPTextModelWithProjection", (c, w) -> new CLIPTextModel(CLIPTextModel.Config.fromJson(c), w, true,
          c.json()));
      register("T5EncoderModel", (c, w) -> new T5EncoderModel(T5EncoderModel.Config.fromJson(c), w, false, c.json()));
      register("UMT5EncoderModel", (c, w) -> new T5EncoderModel(T5EncoderModel.Config.fromJson(c), w, true, c.json()));
      register("Qwen3Model", (c, w) -> new QwenTextModel("Qwen3Model", QwenTextModel.Variant.QWEN3,
          QwenTextModel.Config.fromJson(c), w, c.json()));
      register("Qwen3ForCausalLM", (c, w) -> new QwenTextModel("Qwen3ForCausalLM", QwenTextModel.Variant.QWEN3,
          QwenTextModel.Config.fromJson(c), w, c.json()));
      register("Qwen2_5_VLForConditionalGeneration", (c, w) -> new QwenTextModel("Qwen2_5_VLForConditionalGeneration",
          QwenTextModel.Variant.QWEN2, QwenTextModel.Config.fromVlJson(c), w, c.json()));
      register("AutoencoderKLQwenImage", (c, w) -> new AutoencoderKLWan("AutoencoderKLQwenImage",
          AutoencoderKLWan.Config.fromJson(c), w, c.json()));
      register("AutoencoderKL", (c, w) -> new AutoencoderKL(AutoencoderKL.Config.fromJson(c), w, c.json()));
      register("AutoencoderKLWan", (c, w) -> new AutoencoderKLWan(AutoencoderKLWan.Config.fromJson(c), w, c.json()));
      return this;
    }

    public ModelRegistry build() {
      return new ModelRegistry(factories, plans);
    }
  }
}
